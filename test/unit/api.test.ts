/**
 * The public API's behaviour around the numbers: typed errors for bad input, backend choice,
 * dispose, the event loop staying free while the engine works.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends, loadGenerator, type Generator } from '../../lib/index.js';
import { rejectsWith } from '../helpers/errors.js';
import { describeFixtures, fixturePath } from '../helpers/fixtures.js';

describe('loading errors', () => {
  it('rejects a missing file with ERR_FILE_NOT_FOUND', async () => {
    await rejectsWith(loadGenerator('/nonexistent/model.pkl'), 'ERR_FILE_NOT_FOUND', /nonexistent/);
  });

  it('rejects a file of no known format with ERR_UNKNOWN_FORMAT', async () => {
    const f = path.join(os.tmpdir(), `facegan-junk-${process.pid}.bin`);
    fs.writeFileSync(f, Buffer.from('this is not a checkpoint, just some text of reasonable length'));
    try {
      await rejectsWith(loadGenerator(f), 'ERR_UNKNOWN_FORMAT');
    } finally {
      fs.rmSync(f, { force: true });
    }
  });

  it('rejects a non-string source with ERR_INVALID_OPTION', async () => {
    await rejectsWith(loadGenerator(42 as unknown as string), 'ERR_INVALID_OPTION', /source/);
  });

  it('lists the CPU backend, always last', () => {
    const { backends } = availableBackends();
    expect(backends.at(-1)).toBe('cpu');
  });
});

describeFixtures('API on tiny32', () => {
  let gen: Generator;
  beforeAll(async () => {
    gen = await loadGenerator(fixturePath('tiny32.pkl'), { device: 'auto' });
  });
  afterAll(() => gen?.dispose());

  it("picks the CPU for device 'auto' when no CUDA backend is available", () => {
    if (!availableBackends().backends.includes('cuda')) expect(gen.info.backend).toBe('cpu');
    expect(gen.info.source).toBe(path.resolve(fixturePath('tiny32.pkl')));
  });

  it("rejects device 'cuda' with ERR_BACKEND_UNAVAILABLE when there is no GPU", async () => {
    if (availableBackends().backends.includes('cuda')) return;
    await rejectsWith(loadGenerator(fixturePath('tiny32.pkl'), { device: 'cuda' }), 'ERR_BACKEND_UNAVAILABLE', /CUDA/);
  });

  it('rejects bad load options', async () => {
    const f = fixturePath('tiny32.pkl');
    await rejectsWith(loadGenerator(f, { device: 'tpu' as never }), 'ERR_INVALID_OPTION', /Expected one of 'auto', 'cpu', 'cuda' for device but received 'tpu'/);
    await rejectsWith(loadGenerator(f, { device: 'cpu', precision: 'fp16' }), 'ERR_INVALID_OPTION', /precision/);
    await rejectsWith(loadGenerator(f, { threads: -1 }), 'ERR_INVALID_OPTION', /threads/);
  });

  it('rejects bad seeds, psi, z, classes, batch sizes and outputs with messages naming the option', async () => {
    await rejectsWith(gen.generate({ seed: -1 }), 'ERR_INVALID_OPTION', /Expected an integer in \[0, 4294967295\] for seed but received -1/);
    await rejectsWith(gen.generate({ seed: 2 ** 32 }), 'ERR_INVALID_OPTION', /seed/);
    await rejectsWith(gen.generate({ seed: 1.5 }), 'ERR_INVALID_OPTION', /seed/);
    await rejectsWith(gen.generate({ seeds: [1, Number.NaN] }), 'ERR_INVALID_OPTION', /seeds\[1\]/);
    await rejectsWith(gen.generate({ seed: 1, psi: Number.NaN }), 'ERR_INVALID_OPTION', /finite number for psi/);
    await rejectsWith(gen.generate({ seed: 1, psi: Infinity }), 'ERR_INVALID_OPTION', /psi/);
    await rejectsWith(gen.generate({ z: new Float32Array(63) }), 'ERR_INVALID_OPTION', /zDim = 64/);
    await rejectsWith(gen.generate({ z: new Float32Array(64).fill(Number.NaN) }), 'ERR_INVALID_OPTION', /z\[0\]/);
    await rejectsWith(gen.generate({ seed: 1, z: new Float32Array(64) }), 'ERR_INVALID_OPTION', /only one/);
    await rejectsWith(gen.generate({}), 'ERR_INVALID_OPTION', /seed/);
    await rejectsWith(gen.generate({ seed: 1, classIndex: 0 }), 'ERR_INVALID_OPTION', /unconditional/);
    await rejectsWith(gen.generate({ seeds: new Array(5000).fill(1) }), 'ERR_INVALID_OPTION', /1 to 1024 seeds/);
    await rejectsWith(gen.generate({ seed: 1, noiseMode: 'loud' as never }), 'ERR_INVALID_OPTION', /noiseMode/);
    await rejectsWith(gen.generate({ seed: 1, output: 'png' as never }), 'ERR_INVALID_OPTION', /output/);
    await rejectsWith(gen.generate({ seed: 1, truncationCutoff: 99 }), 'ERR_INVALID_OPTION', /truncationCutoff/);
    await rejectsWith(gen.generate(null as never), 'ERR_INVALID_OPTION', /options/);
    await rejectsWith(gen.synthesis(new Float32Array(10)), 'ERR_INVALID_OPTION', /ws/);
    await rejectsWith(gen.synthesis([1, 2, 3] as never), 'ERR_INVALID_OPTION', /Float32Array/);
    await rejectsWith(() => gen.zFromSeed(-5), 'ERR_INVALID_OPTION', /seed/);
    // The generator still works after all of that.
    const [img] = await gen.generate({ seed: 3 });
    expect(img.data.length).toBe(32 * 32 * 3);
  });

  it('keeps the event loop free while generating', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const started = Date.now();
    const images = await gen.generate({ seeds: Array.from({ length: 64 }, (_, i) => i), psi: 0.7 });
    const elapsed = Date.now() - started;
    clearInterval(timer);
    expect(images).toHaveLength(64);
    // With a blocked loop the interval could not fire at all during the call.
    if (elapsed > 50) expect(ticks).toBeGreaterThan(2);
  });

  it('gives the same images whatever the batch split, random noise included', async () => {
    const small = await loadGenerator(fixturePath('tiny32.pkl'), { device: 'cpu', batchSize: 3 });
    try {
      const opts = { seeds: [0, 1, 2, 3, 4, 5, 6, 7], psi: 0.7, noiseMode: 'random' as const, noiseSeed: 1234 };
      const whole = await gen.generate(opts);
      const split = await small.generate(opts);
      for (let i = 0; i < 8; i++) expect(Buffer.from(split[i].data).equals(Buffer.from(whole[i].data)), `seed ${i}`).toBe(true);
      // Image i's noise depends on its place in the request, so two images of one seed differ.
      const [a, b] = await gen.generate({ seeds: [9, 9], noiseMode: 'random', noiseSeed: 1, output: 'float32' });
      expect(Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength))).toBe(false);
    } finally {
      small.dispose();
    }
  });

  it('runs concurrent calls one after another with correct results', async () => {
    const [[a], [b]] = await Promise.all([gen.generate({ seed: 5 }), gen.generate({ seed: 6 })]);
    const [a2] = await gen.generate({ seed: 5 });
    expect(Buffer.from(a.data).equals(Buffer.from(a2.data))).toBe(true);
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(false);
  });

  it('rejects calls after dispose with ERR_DISPOSED, and lets a running call finish', async () => {
    const g = await loadGenerator(fixturePath('tiny32.pkl'), { device: 'cpu' });
    const running = g.generate({ seeds: [1, 2, 3, 4] });
    g.dispose();
    expect(g.disposed).toBe(true);
    await rejectsWith(running, 'ERR_DISPOSED');
    await rejectsWith(g.generate({ seed: 1 }), 'ERR_DISPOSED', /disposed/);
    g.dispose(); // twice is harmless
  });
});

describeFixtures('gen.exportOnnx', () => {
  it('writes an ONNX graph that ONNX Runtime runs to the same image', async () => {
    const ort = await import('onnxruntime-node');
    const gen = await loadGenerator(fixturePath('tiny32.pkl'), { device: 'cpu' });
    const dst = path.join(os.tmpdir(), `facegan-export-${process.pid}.onnx`);
    try {
      const result = await gen.exportOnnx(dst);
      expect(result.files).toEqual([dst]);
      const z = Float32Array.from(gen.zFromSeed(11));
      const [want] = await gen.generate({ z, psi: 0.7, output: 'float32' });
      const session = await ort.InferenceSession.create(dst);
      const out = await session.run({
        z: new ort.Tensor('float32', z, [1, gen.info.zDim]),
        psi: new ort.Tensor('float32', Float32Array.of(0.7), []),
      });
      const got = out[session.outputNames[0]].data as Float32Array;
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want.data[i]));
      expect(got.length).toBe(want.data.length);
      expect(worst).toBeLessThanOrEqual(1e-4);
    } finally {
      gen.dispose();
      fs.rmSync(dst, { force: true });
    }
  });
});
