/**
 * Issue 13: hostile input and careless use. Each block is one point of the issue; every test
 * here failed before the fix it covers (NaN faces returned, /dev/zero read without end, a FIFO
 * waited on forever, ws read after the call, holes taken as zeros, a source overwritten, a
 * dispose() that let a 1024-image call run to its end, ERR_NATIVE where a precise code belongs).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertCheckpoint, readCheckpoint, serializeModel } from '../../lib/convert/index.js';
import type { Float32Tensor, StyleGAN2Config } from '../../lib/convert/stylegan2.js';
import { MAX_INPUT_FILE_BYTES } from '../../lib/files.js';
import { DEFAULT_MODEL, loadGenerator, type Generator } from '../../lib/index.js';
import { writeSafetensors } from '../../lib/safetensors.js';
import { rejectsWith } from '../helpers/errors.js';
import { SMALL_CONFIG, randomTensors } from './convert/synthetic.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-hostile-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function writeModel(name: string, config: StyleGAN2Config, tensors: Map<string, Float32Tensor>): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, serializeModel({ config, tensors, source: 'test' }));
  return f;
}

/** The tensors with those whose names start with `prefix` set to ±3e38: finite, but no float32 sum of them is. */
function withHuge(tensors: Map<string, Float32Tensor>, prefix: string): Map<string, Float32Tensor> {
  const out = new Map<string, Float32Tensor>();
  for (const [name, t] of tensors) {
    out.set(name, name.startsWith(prefix) ? { ...t, data: t.data.map((v) => (v < 0 ? -3e38 : 3e38)) } : t);
  }
  return out;
}

/** A safetensors file with the given config written verbatim (no validation on the way out). */
function writeRawConfig(name: string, config: Record<string, unknown>, tensors: Map<string, Float32Tensor>): string {
  const f = path.join(tmp, name);
  const st = new Map([...tensors].map(([n, t]) => [n, { dtype: 'F32' as const, shape: t.shape, data: t.data }]));
  fs.writeFileSync(f, writeSafetensors(st, { format: 'facegan', format_version: '1', config: JSON.stringify(config), source: 'test' }));
  return f;
}

const cond: StyleGAN2Config = { ...SMALL_CONFIG, c_dim: 3 };

describe('1. no NaN faces', () => {
  it('a StyleGAN2 file with huge finite weights loads, but generate rejects with ERR_NON_FINITE (uint8 and float32)', async () => {
    // (No conv_clamp: with one, the overflow is clamped to ±clamp and the image stays finite.)
    const unclamped: StyleGAN2Config = { ...SMALL_CONFIG, conv_clamp: null };
    const gen = await loadGenerator(writeModel('huge-rgb.safetensors', unclamped, withHuge(randomTensors(unclamped), 'synthesis.b16.torgb.weight')), { device: 'cpu' });
    try {
      await rejectsWith(gen.generate({ seed: 1 }), 'ERR_NON_FINITE', /NaN or infinite/);
      await rejectsWith(gen.generate({ seeds: [1, 2], output: 'float32' }), 'ERR_NON_FINITE');
      // The engine is healthy afterwards: another call still runs (and fails the same way).
      await rejectsWith(gen.synthesis(new Float32Array(SMALL_CONFIG.num_ws * SMALL_CONFIG.w_dim)), 'ERR_NON_FINITE');
    } finally {
      gen.dispose();
    }
  });

  it('non-finite ws from the mapping network reject mapping() and generate() with ERR_NON_FINITE', async () => {
    const gen = await loadGenerator(writeModel('huge-map.safetensors', SMALL_CONFIG, withHuge(randomTensors(SMALL_CONFIG), 'mapping.fc')), { device: 'cpu' });
    try {
      await rejectsWith(gen.mapping({ seed: 3 }), 'ERR_NON_FINITE', /mapping/);
      await rejectsWith(gen.generate({ seed: 3 }), 'ERR_NON_FINITE');
    } finally {
      gen.dispose();
    }
  });

  it('the default (ProGAN) model with a huge toRGB rejects with ERR_NON_FINITE', async () => {
    const ckpt = await readCheckpoint(DEFAULT_MODEL);
    const tensors = new Map(ckpt.tensors);
    const t = tensors.get('progan.torgb.weight')!;
    tensors.set('progan.torgb.weight', { ...t, data: t.data.map((v) => (v < 0 ? -3e38 : 3e38)) });
    const f = path.join(tmp, 'progan-huge.safetensors');
    fs.writeFileSync(f, serializeModel({ config: ckpt.config, tensors, source: 'test' }));
    const gen = await loadGenerator(f, { device: 'cpu' });
    try {
      await rejectsWith(gen.generate({ seed: 0 }), 'ERR_NON_FINITE');
    } finally {
      gen.dispose();
    }
  });

  it.each([4096, 1e308, 0, -0.01, 1e-300])('refuses mapping_lr_multiplier %s at load with ERR_CORRUPT_FILE', async (lr) => {
    const f = writeRawConfig(`lr-${lr}.safetensors`, { ...SMALL_CONFIG, mapping_lr_multiplier: lr }, randomTensors(SMALL_CONFIG));
    await rejectsWith(loadGenerator(f, { device: 'cpu' }), 'ERR_CORRUPT_FILE', /mapping_lr_multiplier/);
  });

  // Found by the fuzzer (seed 7, mutant 2433): the engine refused num_fp16_res 4096, so the
  // file gave ERR_NATIVE instead of ERR_CORRUPT_FILE.
  it.each([['num_fp16_res', 4096], ['mapping_layers', 65], ['img_channels', 65]] as const)(
    'refuses %s = %s (beyond the engine\'s bound) at load with ERR_CORRUPT_FILE',
    async (key, value) => {
      const f = writeRawConfig(`${key}.safetensors`, { ...SMALL_CONFIG, [key]: value }, randomTensors(SMALL_CONFIG));
      await rejectsWith(loadGenerator(f, { device: 'cpu' }), 'ERR_CORRUPT_FILE', new RegExp(key));
    },
  );

  it('refuses an absurd conv_clamp with ERR_CORRUPT_FILE', async () => {
    const f = writeRawConfig('clamp.safetensors', { ...SMALL_CONFIG, conv_clamp: 1e300 }, randomTensors(SMALL_CONFIG));
    await rejectsWith(loadGenerator(f, { device: 'cpu' }), 'ERR_CORRUPT_FILE', /conv_clamp/);
  });

  it('accepts the official mapping_lr_multiplier', async () => {
    const gen = await loadGenerator(writeModel('ok.safetensors', SMALL_CONFIG, randomTensors(SMALL_CONFIG)), { device: 'cpu' });
    const [img] = await gen.generate({ seed: 1 });
    expect(img!.data.length).toBe(16 * 16 * 3);
    gen.dispose();
  });
});

describe('2. special and huge files', () => {
  it('refuses /dev/zero at once with ERR_UNKNOWN_FORMAT (it never ends)', async () => {
    if (!fs.existsSync('/dev/zero')) return;
    const t0 = Date.now();
    await rejectsWith(loadGenerator('/dev/zero'), 'ERR_UNKNOWN_FORMAT', /character device.*only regular files/);
    await rejectsWith(readCheckpoint('/dev/zero'), 'ERR_UNKNOWN_FORMAT');
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('refuses a FIFO without waiting for a writer', async () => {
    const fifo = path.join(tmp, 'pipe.pkl');
    try {
      execFileSync('mkfifo', [fifo]);
    } catch {
      return; // no mkfifo here
    }
    await rejectsWith(loadGenerator(fifo), 'ERR_UNKNOWN_FORMAT', /FIFO/);
    await rejectsWith(convertCheckpoint(fifo, path.join(tmp, 'out.safetensors')), 'ERR_UNKNOWN_FORMAT', /FIFO/);
  });

  it('refuses a TensorFlow.js weight shard that is a link to a FIFO', async () => {
    const dir = path.join(tmp, 'tfjs-fifo');
    fs.mkdirSync(dir);
    const fixtures = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'fixtures', 'progan');
    fs.copyFileSync(path.join(fixtures, 'tiny-model.json'), path.join(dir, 'model.json'));
    const shard = (JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')) as { weightsManifest: { paths: string[] }[] }).weightsManifest[0]!.paths[0]!;
    try {
      execFileSync('mkfifo', [path.join(tmp, 'shard-fifo')]);
    } catch {
      return;
    }
    fs.symlinkSync(path.join(tmp, 'shard-fifo'), path.join(dir, shard));
    await rejectsWith(loadGenerator(dir), 'ERR_UNKNOWN_FORMAT', /FIFO/);
  });

  it(`refuses a file over the limit (${MAX_INPUT_FILE_BYTES} bytes) with ERR_FILE_TOO_LARGE, not ERR_FILE_NOT_FOUND`, async () => {
    const big = path.join(tmp, 'big.pkl');
    const fd = fs.openSync(big, 'w');
    fs.ftruncateSync(fd, MAX_INPUT_FILE_BYTES + 1); // sparse: no disk used
    fs.closeSync(fd);
    await rejectsWith(loadGenerator(big), 'ERR_FILE_TOO_LARGE', /limit is 4294967296 bytes|limit is/);
  });

  it('refuses a directory that is not a TensorFlow.js model with ERR_FILE_NOT_FOUND', async () => {
    await rejectsWith(loadGenerator(tmp), 'ERR_FILE_NOT_FOUND', /model\.json/);
  });
});

describe('3. synthesis(ws) copies ws when the call is made', () => {
  let gen: Generator;
  beforeAll(async () => {
    gen = await loadGenerator(writeModel('copy.safetensors', SMALL_CONFIG, randomTensors(SMALL_CONFIG)), { device: 'cpu', batchSize: 1 });
  });
  afterAll(() => gen?.dispose());

  it('a change to ws after the call does not reach the images', async () => {
    const ws = await gen.mapping({ seed: 5 });
    const [want] = await gen.synthesis(ws.slice(), { output: 'float32' });
    const busy = gen.generate({ seeds: Array.from({ length: 32 }, (_, i) => i) }); // the queue is busy
    const call = gen.synthesis(ws, { output: 'float32' });
    ws.fill(Number.NaN);
    await busy;
    const [got] = await call;
    expect(got!.data).toEqual(want!.data);
  });
});

describe('4. sparse arrays are refused', () => {
  let gen: Generator;
  let condGen: Generator;
  beforeAll(async () => {
    gen = await loadGenerator(writeModel('sparse.safetensors', SMALL_CONFIG, randomTensors(SMALL_CONFIG)), { device: 'cpu' });
    condGen = await loadGenerator(writeModel('cond.safetensors', cond, randomTensors(cond)), { device: 'cpu' });
  });
  afterAll(() => {
    gen?.dispose();
    condGen?.dispose();
  });

  it('seeds: new Array(3)', async () => {
    await rejectsWith(gen.generate({ seeds: new Array<number>(3) }), 'ERR_INVALID_OPTION', /hole.*seeds\[0\]/);
    // eslint-disable-next-line no-sparse-arrays
    await rejectsWith(gen.generate({ seeds: [1, , 2] as number[] }), 'ERR_INVALID_OPTION', /seeds\[1\]/);
    await rejectsWith(gen.mapping({ seeds: new Array<number>(2) }), 'ERR_INVALID_OPTION', /seeds\[0\]/);
  });

  it('classIndex: new Array(2)', async () => {
    await rejectsWith(condGen.generate({ seeds: [1, 2], classIndex: new Array<number>(2) }), 'ERR_INVALID_OPTION', /classIndex\[0\]/);
    const [a, b] = await condGen.generate({ seeds: [1, 2], classIndex: [0, 2] });
    expect(a!.data.length).toBe(b!.data.length);
  });

  it('z: a number[] with holes', async () => {
    await rejectsWith(gen.generate({ z: new Array<number>(SMALL_CONFIG.z_dim) }), 'ERR_INVALID_OPTION', /z\[0\]/);
  });
});

describe('5. convertCheckpoint never overwrites its source', () => {
  it('refuses the same path, a symbolic link and a hard link to the source', async () => {
    const src = writeModel('src.safetensors', SMALL_CONFIG, randomTensors(SMALL_CONFIG));
    const before = fs.readFileSync(src);
    const sym = path.join(tmp, 'sym.safetensors');
    const hard = path.join(tmp, 'hard.safetensors');
    fs.symlinkSync(src, sym);
    fs.linkSync(src, hard);
    await rejectsWith(convertCheckpoint(src, src), 'ERR_INVALID_OPTION', /dst/);
    await rejectsWith(convertCheckpoint(src, path.join(tmp, '.', 'src.safetensors')), 'ERR_INVALID_OPTION');
    await rejectsWith(convertCheckpoint(src, sym), 'ERR_INVALID_OPTION');
    await rejectsWith(convertCheckpoint(sym, src, { half: true }), 'ERR_INVALID_OPTION');
    await rejectsWith(convertCheckpoint(src, hard), 'ERR_INVALID_OPTION');
    expect(fs.readFileSync(src).equals(before)).toBe(true);
    // A different destination still works.
    await convertCheckpoint(src, path.join(tmp, 'other.safetensors'), { half: true });
    expect(fs.statSync(path.join(tmp, 'other.safetensors')).size).toBeGreaterThan(0);
  });
});

describe('6. dispose() stops a running call', () => {
  it('a 1024-image engine call rejects with ERR_DISPOSED within one layer, not at its end', async () => {
    const gen = await loadGenerator(DEFAULT_MODEL, { device: 'cpu', batchSize: 1024 });
    const t0 = performance.now();
    await gen.generate({ seeds: [0, 1] });
    const perImage = (performance.now() - t0) / 2;
    const seeds = Array.from({ length: 1024 }, (_, i) => i);
    const call = gen.generate({ seeds });
    await new Promise((r) => setTimeout(r, 100));
    const t1 = performance.now();
    gen.dispose();
    await rejectsWith(call, 'ERR_DISPOSED');
    const after = performance.now() - t1;
    // The whole call would take ~1024 × perImage.
    expect(after).toBeLessThan(Math.max(500, 64 * perImage));
    expect(after).toBeLessThan(256 * perImage);
  });
});

/**
 * A 1024-image request on a generator with `batchSize`, aborted after 100 ms: rejects with
 * ERR_ABORTED within `budgetImages` image-times (the request would take ~1024), and the generator
 * is free for the next request at once.
 */
async function abortedLongRequest(batchSize: number, budgetImages: number): Promise<void> {
  const gen = await loadGenerator(DEFAULT_MODEL, { device: 'cpu', batchSize });
  try {
    const t0 = performance.now();
    await gen.generate({ seeds: [0, 1] });
    const perImage = (performance.now() - t0) / 2;
    const ac = new AbortController();
    const call = gen.generate({ seeds: Array.from({ length: 1024 }, (_, i) => i), signal: ac.signal });
    await new Promise((r) => setTimeout(r, 100));
    const t1 = performance.now();
    ac.abort();
    await rejectsWith(call, 'ERR_ABORTED');
    expect(performance.now() - t1).toBeLessThan(Math.max(500, budgetImages * perImage));
    const t2 = performance.now();
    await gen.generate({ seed: 5 });
    expect(performance.now() - t2).toBeLessThan(Math.max(500, 24 * perImage));
  } finally {
    gen.dispose();
  }
}

describe('6b. an AbortSignal stops a long request within one chunk', () => {
  it('a 1024-image request aborted after 100 ms rejects with ERR_ABORTED long before its end', async () => {
    // batchSize only caps how many requests are gathered into one engine call; it never splits a
    // request: the 1024 images are one engine call, chunked by the core, stopped by its cancel flag.
    await abortedLongRequest(16, 48);
  });
});

describe('6c. an AbortSignal stops the running engine call when every request of it has left', () => {
  it('a 1024-image request in one engine call, aborted after 100 ms, stops within one layer', async () => {
    // The engine call holds all 1024 images: only its cancel flag can end it early.
    await abortedLongRequest(1024, 64);
  });

  it('one request leaving a shared batch does not cancel the others', async () => {
    const gen = await loadGenerator(DEFAULT_MODEL, { device: 'cpu', batchSize: 8 });
    try {
      const alone = await gen.generate({ seed: 3 });
      const ac = new AbortController();
      const leaving = gen.generate({ seed: 1, signal: ac.signal });
      const staying = gen.generate({ seed: 3, signal: new AbortController().signal });
      setTimeout(() => ac.abort(), 5);
      const [left, stayed] = await Promise.allSettled([leaving, staying]);
      expect(stayed.status).toBe('fulfilled');
      if (stayed.status === 'fulfilled') expect(Buffer.from(stayed.value[0].data).equals(Buffer.from(alone[0].data))).toBe(true);
      // The leaving request either finished before the abort or was dropped with ERR_ABORTED.
      if (left.status === 'rejected') expect((left.reason as { code?: string }).code).toBe('ERR_ABORTED');
    } finally {
      gen.dispose();
    }
  });
});

describe('7. error codes', () => {
  let gen: Generator;
  beforeAll(async () => {
    gen = await loadGenerator(writeModel('codes.safetensors', SMALL_CONFIG, randomTensors(SMALL_CONFIG)), { device: 'cpu' });
  });
  afterAll(() => gen?.dispose());

  it('non-finite weights → ERR_CORRUPT_FILE naming the tensor', async () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const tensors = randomTensors(SMALL_CONFIG);
      tensors.get('synthesis.b8.conv0.weight')!.data[7] = bad;
      const f = writeRawConfig(`nonfinite-${bad}.safetensors`, { ...SMALL_CONFIG }, tensors);
      await rejectsWith(loadGenerator(f, { device: 'cpu' }), 'ERR_CORRUPT_FILE', /synthesis\.b8\.conv0\.weight.*index 7/);
    }
  });

  it('psi: 1e308 → ERR_INVALID_OPTION', async () => {
    await rejectsWith(gen.generate({ seed: 1, psi: 1e308 }), 'ERR_INVALID_OPTION', /psi/);
    await rejectsWith(gen.mapping({ seed: 1, psi: -1e39 }), 'ERR_INVALID_OPTION', /psi/);
    const [img] = await gen.generate({ seed: 1, psi: 0.7 });
    expect(img!.data.length).toBe(16 * 16 * 3);
  });

  it('an option getter that throws → ERR_INVALID_OPTION naming it, with the error as cause', async () => {
    const boom = new Error('boom');
    const opts = Object.defineProperty({ seed: 1 }, 'psi', { enumerable: true, get: () => { throw boom; } });
    const err = await rejectsWith(gen.generate(opts), 'ERR_INVALID_OPTION', /options\.psi threw: boom/);
    expect(err.cause).toBe(boom);
    const seeds = [1, 2];
    Object.defineProperty(seeds, 1, { enumerable: true, get: () => { throw boom; } });
    await rejectsWith(gen.generate({ seeds }), 'ERR_INVALID_OPTION', /seeds\[1\] threw/);
    const proxy = new Proxy({}, { ownKeys: () => { throw boom; } });
    await rejectsWith(gen.generate(proxy as never), 'ERR_INVALID_OPTION', /threw/);
  });

  it('options are read once: a getter cannot pass the checks with one value and run with another', async () => {
    let reads = 0;
    const opts = Object.defineProperty({}, 'seed', { enumerable: true, get: () => (reads++ === 0 ? 1 : -1) });
    const [img] = await gen.generate(opts as { seed: number });
    expect(img!.seed).toBe(1);
  });
});
