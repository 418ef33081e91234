/**
 * The judge: every fixture checkpoint (.pkl and .tf.pkl) and every golden case, through the
 * public Node API on the CPU engine.
 *   ws ≤ 1e-5 relative (max |Δ| / max |golden|), float images ≤ 1e-4 absolute,
 *   uint8 identical except at most 0.1 % of values off by one.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadGenerator, type FloatImage, type Generator } from '../../lib/index.js';
import { describeFixtures, fixturePath } from '../helpers/fixtures.js';
import { GOLDEN_SEED_CASES, readGolden, seedCases, type Golden } from '../helpers/golden.js';
import { expectImageClose, expectUint8Close, expectWsClose, maxAbsDiff } from '../helpers/compare.js';

const CHECKPOINTS: [string, string][] = [
  ['tiny32', 'tiny32.pkl'],
  ['tiny32', 'tiny32.tf.pkl'],
  ['small64-fp16', 'small64-fp16.pkl'],
  ['small64-fp16', 'small64-fp16.tf.pkl'],
  ['cond32', 'cond32.pkl'],
  ['gray16', 'gray16.pkl'],
];

function concatFloat(images: FloatImage[]): Float32Array {
  const out = new Float32Array(images.reduce((n, im) => n + im.data.length, 0));
  let o = 0;
  for (const im of images) {
    out.set(im.data, o);
    o += im.data.length;
  }
  return out;
}

for (const [config, file] of CHECKPOINTS) {
  describeFixtures(`golden ${file}`, () => {
    let gen: Generator;
    let golden: Golden;
    beforeAll(async () => {
      golden = readGolden(config);
      gen = await loadGenerator(fixturePath(file), { device: 'cpu' });
    });
    afterAll(() => gen?.dispose());

    it('describes the model', () => {
      const c = golden.cases;
      expect(gen.info).toMatchObject({
        resolution: c.img_resolution,
        imageChannels: c.img_channels,
        zDim: c.z_dim,
        wDim: c.w_dim,
        cDim: c.c_dim,
        numWs: c.num_ws,
        backend: 'cpu',
        arch: 'stylegan2',
      });
    });

    it('makes z from seeds exactly as numpy RandomState does', () => {
      const cases = seedCases(golden);
      expect(cases).toHaveLength(GOLDEN_SEED_CASES);
      for (const c of cases) {
        const want = golden.tensor(c.z).data as Float64Array;
        const got = gen.zFromSeed(c.seed);
        expect(Array.from(got)).toEqual(Array.from(want));
        expect(Array.from(Float32Array.from(got))).toEqual(Array.from(Float32Array.from(want)));
      }
    });

    it('maps seeds to the golden ws', async () => {
      const cases = seedCases(golden);
      expect(cases).toHaveLength(GOLDEN_SEED_CASES);
      for (const c of cases) {
        const classIndex = golden.cases.c_dim > 0 ? c.seed % 10 : undefined;
        const ws = await gen.mapping({ seed: c.seed, psi: c.psi, classIndex });
        expectWsClose(ws, golden.tensor(c.ws).data as Float32Array);
      }
    });

    it('synthesises the golden float images and uint8 images from seeds', async () => {
      const cases = seedCases(golden);
      expect(cases).toHaveLength(GOLDEN_SEED_CASES);
      for (const c of cases) {
        const classIndex = golden.cases.c_dim > 0 ? c.seed % 10 : undefined;
        const noiseMode = c.noise_mode as 'const' | 'none';
        const [f] = await gen.generate({ seed: c.seed, psi: c.psi, classIndex, noiseMode, output: 'float32' });
        expect(f.seed).toBe(c.seed);
        expectImageClose(f.data, golden.tensor(c.image).data as Float32Array);
        const [u] = await gen.generate({ seed: c.seed, psi: c.psi, classIndex, noiseMode });
        expect([u.width, u.height, u.channels]).toEqual([golden.cases.img_resolution, golden.cases.img_resolution, golden.cases.img_channels]);
        expectUint8Close(u.data, golden.tensor(c.image_uint8).data as Uint8Array);
      }
    });

    it('mixes styles: golden ws/mix through synthesis', async () => {
      const c = golden.cases.cases.find((x) => x.mixing !== undefined)!;
      const { first, second, cutoff } = c.mixing!;
      const a = golden.tensor(first).data as Float32Array;
      const b = golden.tensor(second).data as Float32Array;
      const row = golden.cases.w_dim;
      const mixed = Float32Array.from(a);
      mixed.set(b.subarray(cutoff * row), cutoff * row);
      expectWsClose(mixed, golden.tensor(c.ws!).data as Float32Array);
      const [img] = await gen.synthesis(mixed, { noiseMode: 'const', output: 'float32' });
      expectImageClose(img.data, golden.tensor(c.image!).data as Float32Array);
    });

    it('generates a batch of 4 equal to the golden batch and to one-by-one', async () => {
      const c = golden.cases.cases.find((x) => x.batch_seeds !== undefined)!;
      const seeds = c.batch_seeds!;
      const classIndex = golden.cases.c_dim > 0 ? seeds.map((s) => s % 10) : undefined;
      const batch = await gen.generate({ seeds, psi: c.psi, classIndex, noiseMode: 'const', output: 'float32' });
      expect(batch.map((b) => b.seed)).toEqual(seeds);
      expectImageClose(concatFloat(batch), golden.tensor(c.image!).data as Float32Array);
      for (let i = 0; i < seeds.length; i++) {
        const [one] = await gen.generate({
          seed: seeds[i],
          psi: c.psi,
          classIndex: classIndex?.[i],
          noiseMode: 'const',
          output: 'float32',
        });
        expect(Array.from(one.data)).toEqual(Array.from(batch[i].data));
      }
    });

    it('gives different, finite images on each call with noiseMode random', async () => {
      const classIndex = golden.cases.c_dim > 0 ? 3 : undefined;
      const [a] = await gen.generate({ seed: 7, classIndex, noiseMode: 'random', output: 'float32' });
      const [b] = await gen.generate({ seed: 7, classIndex, noiseMode: 'random', output: 'float32' });
      const [k] = await gen.generate({ seed: 7, classIndex, noiseMode: 'const', output: 'float32' });
      for (const im of [a, b]) expect(im.data.every(Number.isFinite)).toBe(true);
      expect(maxAbsDiff(a.data, b.data)).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(a.data, k.data)).toBeGreaterThan(1e-3);
      // The same noise seed repeats the same image.
      const [c1] = await gen.generate({ seed: 7, classIndex, noiseMode: 'random', noiseSeed: 99, output: 'float32' });
      const [c2] = await gen.generate({ seed: 7, classIndex, noiseMode: 'random', noiseSeed: 99, output: 'float32' });
      expect(Array.from(c1.data)).toEqual(Array.from(c2.data));
    });
  });
}
