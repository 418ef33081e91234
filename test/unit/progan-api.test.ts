/**
 * The embedded default model (ProGAN-128, CelebA; float16 weights) through the public API,
 * against the original graph run by TensorFlow.js (test/fixtures/progan, made once by
 * scripts/make-progan-fixture.mjs).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proganToUint8 } from '../helpers/progan-reference.js';
import type { ProganConfig } from '../../lib/convert/progan.js';
import { readCheckpoint } from '../../lib/convert/index.js';
import { DEFAULT_MODEL, FaceganError, generate, loadGenerator, type Generator } from '../../lib/index.js';
import { readSafetensors } from '../../lib/safetensors.js';
import { maxAbsDiff } from '../helpers/compare.js';

const here = path.dirname(new URL(import.meta.url).pathname);
const fixture = readSafetensors(fs.readFileSync(path.join(here, '..', 'fixtures', 'progan', 'progan-tfjs-outputs.safetensors')));
const SEEDS = JSON.parse(fixture.metadata.seeds!) as number[];
const R = 128;
const CROP = 32;
const C0 = (R - CROP) / 2;

/** HWC window of clip(v, 0, 1) from a CHW float image: what the TF-Hub graph outputs there. */
function tfhubWindow(v: Float32Array, y0: number, x0: number, size: number): Float32Array {
  const out = new Float32Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) out[(y * size + x) * 3 + c] = Math.min(1, Math.max(0, v[c * R * R + (y0 + y) * R + x0 + x]));
    }
  }
  return out;
}

function psnr(a: Float32Array, b: Float32Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i] - b[i]) ** 2;
  return 10 * Math.log10(1 / (se / a.length));
}

describe('default model (ProGAN-128)', () => {
  let gen: Generator;
  let config: ProganConfig;
  beforeAll(async () => {
    gen = await loadGenerator(DEFAULT_MODEL, { device: 'cpu' });
    config = (await readCheckpoint(DEFAULT_MODEL)).config as ProganConfig;
  });
  afterAll(() => gen?.dispose());

  it('describes itself', () => {
    expect(gen.info).toMatchObject({ arch: 'progan', resolution: 128, imageChannels: 3, zDim: 512, cDim: 0, backend: 'cpu' });
  });

  it('takes the latents the fixture was made from for its seeds', () => {
    // The fixture's latents came from a JS port of numpy's generator (within 1 ulp in float64,
    // exact in float32, which is what the engine uses); the float64 match is checked against
    // numpy's own values in the StyleGAN2 golden tests.
    const latents = fixture.tensors.get('latents')!.data as Float64Array;
    SEEDS.forEach((seed, i) => {
      const want = Float32Array.from(latents.subarray(i * 512, (i + 1) * 512));
      expect(Array.from(Float32Array.from(gen.zFromSeed(seed)))).toEqual(Array.from(want));
    });
  });

  it('matches the TF.js graph: ≤ 1e-4 against the same fp16 weights, ≥ 40 dB against the float32 original', async () => {
    const images = await gen.generate({ seeds: SEEDS, output: 'float32' });
    const f16w = fixture.tensors.get('images_f16w_center32')!.data as Float32Array;
    const full = fixture.tensors.get('images')!.data as Float32Array;
    images.forEach((img, i) => {
      expect(maxAbsDiff(tfhubWindow(img.data, C0, C0, CROP), f16w.subarray(i * CROP * CROP * 3, (i + 1) * CROP * CROP * 3))).toBeLessThanOrEqual(1e-4);
      expect(psnr(tfhubWindow(img.data, 0, 0, R), full.subarray(i * R * R * 3, (i + 1) * R * R * 3))).toBeGreaterThanOrEqual(40);
    });
  });

  it('maps the float output to pixels exactly as documented, and batches do not change images', async () => {
    const floats = await gen.generate({ seeds: SEEDS, output: 'float32' });
    const bytes = await gen.generate({ seeds: SEEDS });
    floats.forEach((f, i) => {
      const chw = proganToUint8(config, f.data);
      const hwc = new Uint8Array(chw.length);
      for (let p = 0; p < R * R; p++) for (let c = 0; c < 3; c++) hwc[p * 3 + c] = chw[c * R * R + p];
      expect(Buffer.from(bytes[i].data).equals(Buffer.from(hwc)), `seed ${SEEDS[i]}`).toBe(true);
    });
    const [one] = await gen.generate({ seed: SEEDS[2] });
    expect(Buffer.from(one.data).equals(Buffer.from(bytes[2].data))).toBe(true);
  });

  it('is what generate() uses by default', async () => {
    const face = await generate({ seed: 42 });
    const [same] = await gen.generate({ seed: 42 });
    expect([face.width, face.height, face.channels]).toEqual([128, 128, 3]);
    expect(Buffer.from(face.data).equals(Buffer.from(same.data))).toBe(true);
    const other = await generate();
    expect(other.data.length).toBe(face.data.length);
  });

  it('refuses what ProGAN does not have: truncation, mapping, ws', async () => {
    for (const p of [gen.generate({ seed: 1, psi: 0.7 }), gen.mapping({ seed: 1 }), gen.synthesis(new Float32Array(512))]) {
      await expect(p).rejects.toBeInstanceOf(FaceganError);
      await expect(p).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    }
  });
});
