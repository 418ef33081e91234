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

  it("device 'auto' picks CUDA when its backend is available, else the CPU", () => {
    expect(gen.info.backend).toBe(availableBackends().backends.includes('cuda') ? 'cuda' : 'cpu');
    expect(gen.info.source).toBe(path.resolve(fixturePath('tiny32.pkl')));
  });

  it("device 'cuda' loads on CUDA where it is available, else rejects with ERR_BACKEND_UNAVAILABLE", async () => {
    const { backends, unavailable } = availableBackends();
    if (backends.includes('cuda')) {
      const g = await loadGenerator(fixturePath('tiny32.pkl'), { device: 'cuda' });
      try {
        expect(g.info.backend).toBe('cuda');
        const [img] = await g.generate({ seed: 3 });
        expect(img.data.length).toBe(32 * 32 * 3);
      } finally {
        g.dispose();
      }
    } else {
      expect(unavailable.length).toBeGreaterThan(0);
      await rejectsWith(loadGenerator(fixturePath('tiny32.pkl'), { device: 'cuda' }), 'ERR_BACKEND_UNAVAILABLE', /CUDA/);
    }
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
    // A call long enough to tell (≥ 200 ms by the measured time per image, on the CPU engine).
    const g = await loadGenerator(fixturePath('tiny32.pkl'), { device: 'cpu', batchSize: 64 });
    try {
      const t0 = performance.now();
      await g.generate({ seeds: Array.from({ length: 16 }, (_, i) => i) });
      const perImage = (performance.now() - t0) / 16;
      const n = Math.min(1024, Math.max(64, Math.ceil(200 / perImage)));
      let ticks = 0;
      let longestGap = 0;
      let last = performance.now();
      const timer = setInterval(() => {
        const now = performance.now();
        longestGap = Math.max(longestGap, now - last);
        last = now;
        ticks++;
      }, 1);
      const started = performance.now();
      const images = await g.generate({ seeds: Array.from({ length: n }, (_, i) => i), psi: 0.7 });
      const elapsed = performance.now() - started;
      clearInterval(timer);
      expect(images).toHaveLength(n);
      expect(elapsed).toBeGreaterThan(50);
      // With a blocked loop the interval could not fire during the call (at most once, after a
      // gap as long as the call); here it fires all along. Margins for a busy 2-core machine: at
      // least one tick per 50 ms of the call, no gap as long as three quarters of it.
      expect(ticks).toBeGreaterThan(Math.max(3, elapsed / 50));
      expect(longestGap).toBeLessThan(elapsed * 0.75);
    } finally {
      g.dispose();
    }
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

  it('dispose() stops a call that is running in the engine (ERR_DISPOSED, long before it would end) and the calls queued behind it', async () => {
    // One engine call of 1024 images (batchSize 1024, no time cap on gathered batches).
    const g = await loadGenerator(fixturePath('tiny32.pkl'), { device: 'cpu', batchSize: 1024, maxBatchMs: 0 });
    const n = 1024;
    const row = g.info.numWs * g.info.wDim;
    const base = await g.mapping({ seeds: [1, 2, 3, 4, 5, 6, 7, 8] });
    const ws = new Float32Array(n * row);
    for (let i = 0; i < n; i++) ws.set(base.subarray((i % 8) * row, (i % 8 + 1) * row), i * row);
    // The time of the whole call, from a small one.
    const t0 = performance.now();
    await g.synthesis(ws.subarray(0, 16 * row));
    const whole = ((performance.now() - t0) / 16) * n;
    const batchesBefore = g.batchStats.batches;
    const running = g.synthesis(ws);
    const queued = g.generate({ seed: 9 });
    running.catch(() => undefined);
    queued.catch(() => undefined);
    // Wait until the batcher has handed the call to the engine (the counter moves as it does),
    // then a little longer, so that the engine is inside it.
    const deadline = performance.now() + 5000;
    while (g.batchStats.batches === batchesBefore && performance.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    expect(g.batchStats.batches).toBe(batchesBefore + 1);
    await new Promise((r) => setTimeout(r, Math.min(50, whole / 8)));
    const t1 = performance.now();
    g.dispose();
    expect(g.disposed).toBe(true);
    await rejectsWith(running, 'ERR_DISPOSED');
    const after = performance.now() - t1;
    // It stopped at a layer boundary instead of computing the rest of the 1024 images.
    expect(after).toBeLessThan(whole / 2);
    await rejectsWith(queued, 'ERR_DISPOSED');
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
