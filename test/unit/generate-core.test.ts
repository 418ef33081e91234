/**
 * One generate in the core (facegan::Generator::generate, issue 11 §2): latents → images in one
 * native call, the same bits as mapping + synthesis; requests split into chunks by the core only
 * (LoadOptions.maxChunk), the same bits as one pass; the raw addon's calls take one options object
 * and name a bad field in a TypeError / RangeError before anything runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCheckpoint, type Checkpoint } from '../../lib/convert/index.js';
import { DEFAULT_MODEL, loadGenerator } from '../../lib/index.js';
import { native, type NativeGenerator, type NativeImages } from '../../lib/native.js';
import { rejectsWith } from '../helpers/errors.js';
import { describeFixtures, fixturePath } from '../helpers/fixtures.js';

async function engine(ckpt: Checkpoint, maxChunk = 0, backend = 'cpu'): Promise<NativeGenerator> {
  const tensors = [...ckpt.tensors].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: t.data }));
  return native().createGenerator(JSON.stringify(ckpt.config), tensors, { backend: backend as 'cpu', deviceIndex: 0, precision: 'fp32', threads: 0, maxChunk });
}

/** Bit-for-bit equality of two typed arrays (NaN-safe, -0 ≠ +0). */
function sameBits(a: ArrayBufferView | undefined, b: ArrayBufferView | undefined): boolean {
  if (!a || !b) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function sameImages(a: NativeImages, b: NativeImages): boolean {
  return sameBits(a.float32, b.float32) && sameBits(a.uint8, b.uint8);
}

/** z for seeds as the official generate.py makes it: numpy's randn, rounded to float32. */
function zOf(seeds: number[], zDim: number): Float32Array {
  const z = new Float32Array(seeds.length * zDim);
  seeds.forEach((s, i) => z.set(native().numpyRandn(s, zDim), i * zDim));
  return z;
}

function oneHot(classes: number[], cDim: number): Float32Array {
  const c = new Float32Array(classes.length * cDim);
  classes.forEach((k, i) => (c[i * cDim + k] = 1));
  return c;
}

const SEEDS = [0, 1, 2, 3, 4];
const both = { float32: true, uint8: true } as const;

describeFixtures('core generate (StyleGAN2 fixtures)', () => {
  let tiny: Checkpoint;
  let cond: Checkpoint;
  let g: NativeGenerator;
  let gc: NativeGenerator;
  beforeAll(async () => {
    tiny = await readCheckpoint(fixturePath('tiny32.pkl'));
    cond = await readCheckpoint(fixturePath('cond32.pkl'));
    g = await engine(tiny);
    gc = await engine(cond);
  });
  afterAll(() => {
    g.dispose();
    gc.dispose();
  });

  it('generate == mapping + synthesis, bit for bit (seeds and z; truncation; const, random and no noise)', async () => {
    const zDim = tiny.config.z_dim as number;
    const z = zOf(SEEDS, zDim);
    const cases = [
      { psi: 1, truncationCutoff: -1, noiseMode: 'const' as const, noiseSeed: 0 },
      { psi: 0.7, truncationCutoff: -1, noiseMode: 'random' as const, noiseSeed: 1234 },
      { psi: -0.4, truncationCutoff: 3, noiseMode: 'none' as const, noiseSeed: 0 },
    ];
    for (const t of cases) {
      const ws = await g.mapping({ z, psi: t.psi, truncationCutoff: t.truncationCutoff });
      const twoStep = await g.synthesis({ ws, noiseMode: t.noiseMode, noiseSeed: t.noiseSeed, ...both });
      const fromZ = await g.generate({ z, ...t, ...both });
      const fromSeeds = await g.generate({ seeds: Uint32Array.from(SEEDS), ...t, ...both });
      expect(sameImages(fromZ, twoStep), `z, ${JSON.stringify(t)}`).toBe(true);
      expect(sameImages(fromSeeds, twoStep), `seeds, ${JSON.stringify(t)}`).toBe(true);
    }
  });

  it('generate == mapping + synthesis for a conditional model (class labels)', async () => {
    const { z_dim: zDim, c_dim: cDim } = cond.config as { z_dim: number; c_dim: number };
    const z = zOf(SEEDS, zDim);
    const c = oneHot(SEEDS.map((s) => s % cDim), cDim);
    const ws = await gc.mapping({ z, c, psi: 0.5 });
    const twoStep = await gc.synthesis({ ws, ...both });
    expect(sameImages(await gc.generate({ seeds: Uint32Array.from(SEEDS), c, psi: 0.5, ...both }), twoStep)).toBe(true);
    // The labels matter: other classes give other images.
    const other = await gc.generate({ seeds: Uint32Array.from(SEEDS), c: oneHot(SEEDS.map((s) => (s + 1) % cDim), cDim), psi: 0.5, ...both });
    expect(sameBits(other.uint8, twoStep.uint8)).toBe(false);
  });

  it('splits requests into chunks of maxChunk with the same bits as one pass (generate and synthesis, random noise)', async () => {
    const render = { noiseMode: 'random' as const, noiseSeed: 99, imageOffset: 7, ...both };
    const whole = await g.generate({ seeds: Uint32Array.from(SEEDS), psi: 0.8, ...render });
    const ws = await g.mapping({ z: zOf(SEEDS, tiny.config.z_dim as number), psi: 0.8 });
    const wholeSynth = await g.synthesis({ ws, ...render });
    expect(g.chunkImages()).toBeGreaterThanOrEqual(SEEDS.length);
    for (const maxChunk of [1, 2]) {
      const small = await engine(tiny, maxChunk);
      try {
        expect(small.chunkImages()).toBe(maxChunk);
        expect(sameImages(await small.generate({ seeds: Uint32Array.from(SEEDS), psi: 0.8, ...render }), whole), `generate, chunk ${maxChunk}`).toBe(true);
        expect(sameImages(await small.synthesis({ ws, ...render }), wholeSynth), `synthesis, chunk ${maxChunk}`).toBe(true);
      } finally {
        small.dispose();
      }
    }
    // The chunk split really happened where noise depends on the image index: image i's noise is
    // keyed by imageOffset + i, so shifting the offset changes the images.
    const shifted = await g.generate({ seeds: Uint32Array.from(SEEDS), psi: 0.8, ...render, imageOffset: 8 });
    expect(sameBits(shifted.uint8, whole.uint8)).toBe(false);
  });

  it('halves the chunk after an out-of-memory and keeps the halved size, with the same bits (injected fault)', async () => {
    const render = { noiseMode: 'random' as const, noiseSeed: 3, ...both };
    const whole = await g.generate({ seeds: Uint32Array.from(SEEDS), ...render });
    const ws = await g.mapping({ z: zOf(SEEDS, tiny.config.z_dim as number) });
    const wholeSynth = await g.synthesis({ ws, ...render });
    // Chunks of more than 2 images fail as out of memory: 5 → 2, 2, 1.
    process.env.FACEGAN_INJECT_OOM_ABOVE = '2';
    let small: NativeGenerator;
    try {
      small = await engine(tiny, 5);
    } finally {
      delete process.env.FACEGAN_INJECT_OOM_ABOVE;
    }
    try {
      expect(small.chunkImages()).toBe(5);
      expect(sameImages(await small.generate({ seeds: Uint32Array.from(SEEDS), ...render }), whole)).toBe(true);
      expect(small.chunkImages()).toBe(2);
      expect(sameImages(await small.synthesis({ ws, ...render }), wholeSynth)).toBe(true);
    } finally {
      small.dispose();
    }
  });

  it('the library generate() gives the same images as mapping() + synthesis(), and a tiny maxChunk changes nothing', async () => {
    const a = await loadGenerator(fixturePath('tiny32.pkl'), { device: 'cpu' });
    const b = await loadGenerator(fixturePath('tiny32.pkl'), { device: 'cpu', maxChunk: 2 });
    try {
      const opts = { seeds: SEEDS, psi: 0.6, noiseMode: 'random' as const, noiseSeed: 5, output: 'float32' as const };
      const one = await a.generate(opts);
      const ws = await a.mapping({ seeds: SEEDS, psi: 0.6 });
      const two = await a.synthesis(ws, { noiseMode: 'random', noiseSeed: 5, output: 'float32' });
      const chunked = await b.generate(opts);
      one.forEach((img, i) => {
        expect(img.seed).toBe(SEEDS[i]);
        expect(sameBits(img.data, two[i].data), `image ${i}: generate vs mapping + synthesis`).toBe(true);
        expect(sameBits(img.data, chunked[i].data), `image ${i}: maxChunk 2`).toBe(true);
      });
      // The micro-batcher's default batch size is the engine's chunk.
      expect(b.batchSize).toBe(2);
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('rejects bad fields of the options objects with a TypeError / RangeError naming them', () => {
    const z = zOf([1], tiny.config.z_dim as number);
    const ws = new Float32Array((tiny.config.num_ws as number) * (tiny.config.w_dim as number));
    const bad: [() => unknown, RegExp, ErrorConstructor][] = [
      [() => g.generate(undefined as never), /generate\(\{ z \| seeds/, TypeError],
      [() => g.generate([z] as never), /generate\(\{ z \| seeds/, TypeError],
      [() => g.generate({ uint8: true } as never), /exactly one of z .* and seeds/, TypeError],
      [() => g.generate({ z, seeds: Uint32Array.of(1), uint8: true } as never), /exactly one of z/, TypeError],
      [() => g.generate({ z: Array.from(z) as never, uint8: true }), /z must be a Float32Array/, TypeError],
      [() => g.generate({ seeds: [1] as never, uint8: true }), /seeds must be a Uint32Array/, TypeError],
      [() => g.generate({ z: z.subarray(1), uint8: true }), /z must hold n × 64 values/, RangeError],
      [() => g.generate({ seeds: new Uint32Array(1025), uint8: true }), /more than 1024 images/, RangeError],
      [() => g.generate({ z, c: new Float32Array(1), uint8: true }), /c must be absent: this model is unconditional/, RangeError],
      [() => g.generate({ z, psi: Number.NaN, uint8: true }), /psi must be finite/, RangeError],
      [() => g.generate({ z, psi: '0.5' as never, uint8: true }), /psi must be a number/, TypeError],
      [() => g.generate({ z, truncationCutoff: 1.5, uint8: true }), /truncationCutoff must be an integer/, RangeError],
      [() => g.generate({ z, noiseMode: 'loud' as never, uint8: true }), /noiseMode must be 'const', 'random' or 'none'/, TypeError],
      [() => g.generate({ z, noiseSeed: -1, uint8: true }), /noiseSeed must be an integer/, RangeError],
      [() => g.generate({ z, imageOffset: 2 ** 32, uint8: true }), /imageOffset must be an integer/, RangeError],
      [() => g.generate({ z, float32: 1 as never }), /float32 must be a boolean/, TypeError],
      [() => g.generate({ z }), /no output requested/, TypeError],
      [() => g.generate({ z, uint8: true, cancel: {} as never }), /cancel must be a token from createCancelToken/, TypeError],
      [() => g.synthesis({ uint8: true } as never), /exactly one of ws .* and z/, TypeError],
      [() => g.synthesis({ ws: ws.subarray(1), uint8: true }), /ws must hold n × \d+ values/, RangeError],
      [() => g.mapping({} as never), /z \(a Float32Array of n × zDim values\) is required/, TypeError],
      [() => g.mapping({ z, truncationCutoff: '1' as never }), /truncationCutoff must be a number/, TypeError],
      [() => gc.generate({ z: zOf([1], cond.config.z_dim as number), uint8: true }), /c \(n × cDim one-hot labels\) is required/, TypeError],
    ];
    for (const [call, message, type] of bad) {
      let err: unknown;
      try {
        call();
      } catch (e) {
        err = e;
      }
      expect(err, String(message)).toBeInstanceOf(type);
      expect((err as Error).message).toMatch(message);
    }
  });

  it('the core checks what depends on the model: the call rejects (nothing ran)', async () => {
    const z = zOf([1], tiny.config.z_dim as number);
    await expect(g.synthesis({ z, uint8: true })).rejects.toThrow(/a stylegan2 model takes ws \(from mapping\), not z/);
    await expect(g.generate({ z, truncationCutoff: 99, uint8: true })).rejects.toThrow(/truncation_cutoff must be -1/);
  });

  it('the library refuses a bad maxChunk with ERR_INVALID_OPTION', async () => {
    const f = fixturePath('tiny32.pkl');
    await rejectsWith(loadGenerator(f, { device: 'cpu', maxChunk: 0 }), 'ERR_INVALID_OPTION', /maxChunk/);
    await rejectsWith(loadGenerator(f, { device: 'cpu', maxChunk: 1025 }), 'ERR_INVALID_OPTION', /maxChunk/);
    await rejectsWith(loadGenerator(f, { device: 'cpu', maxChunk: 1.5 }), 'ERR_INVALID_OPTION', /maxChunk/);
  });
});

describe('core generate (ProGAN default model: z straight into synthesis)', () => {
  let ckpt: Checkpoint;
  let g: NativeGenerator;
  beforeAll(async () => {
    ckpt = await readCheckpoint(DEFAULT_MODEL);
    g = await engine(ckpt);
  });
  afterAll(() => g.dispose());

  it('generate == synthesis from z, seeds == numpy z, and chunks of 1 change nothing', async () => {
    const z = zOf([3, 4, 5], 512);
    const direct = await g.synthesis({ z, ...both });
    expect(sameImages(await g.generate({ z, ...both }), direct)).toBe(true);
    expect(sameImages(await g.generate({ seeds: Uint32Array.of(3, 4, 5), ...both }), direct)).toBe(true);
    const one = await engine(ckpt, 1);
    try {
      expect(sameImages(await one.generate({ seeds: Uint32Array.of(3, 4, 5), ...both }), direct)).toBe(true);
    } finally {
      one.dispose();
    }
  });

  it('refuses truncation, labels and ws for a model without a mapping network', async () => {
    const z = zOf([1], 512);
    await expect(g.generate({ z, psi: 0.5, uint8: true })).rejects.toThrow(/a progan model has no truncation/);
    expect(() => g.generate({ z, c: new Float32Array(1), uint8: true })).toThrow(/unconditional/);
    expect(() => g.synthesis({ ws: new Float32Array(512), uint8: true })).toThrow(/this model takes no ws/);
    await expect(g.mapping({ z })).rejects.toThrow(/has no mapping network/);
  });
});
