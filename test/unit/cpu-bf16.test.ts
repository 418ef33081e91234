/**
 * The CPU engine's opt-in precision 'bf16' (AMX tiles, native/cpu/gemm_amx.cc) through the public
 * API. Where /proc/cpuinfo lists AMX-BF16 and AVX512-BF16 it must load and stay within 40 dB PSNR
 * of fp32 on the gray16 / cond32 fixtures and the default ProGAN model, with every image's bits
 * independent of the batch; elsewhere it must be refused (ERR_NATIVE naming AMX), and
 * FACEGAN_CPU_ISA=avx2 refuses it everywhere. fp16 stays a GPU option (api.test.ts).
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MODEL, loadGenerator, type FloatImage, type Generator } from '../../lib/index.js';
import { rejectsWith } from '../helpers/errors.js';
import { describeFixtures, fixturePath } from '../helpers/fixtures.js';

function cpuHasAmxBf16(): boolean {
  try {
    const flags = fs.readFileSync('/proc/cpuinfo', 'utf8');
    return /\bamx_bf16\b/.test(flags) && /\bamx_tile\b/.test(flags) && /\bavx512_bf16\b/.test(flags);
  } catch {
    return false;
  }
}
const AMX = process.arch === 'x64' && cpuHasAmxBf16();
if (!AMX) console.log('cpu-bf16: no AMX-BF16 on this CPU: only the refusal is checked');

/** PSNR of a against the reference b, the peak being b's range. */
function psnr(a: Float32Array, b: Float32Array): number {
  let mse = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < b.length; i++) {
    mse += (a[i]! - b[i]!) ** 2;
    lo = Math.min(lo, b[i]!);
    hi = Math.max(hi, b[i]!);
  }
  mse /= b.length;
  return 10 * Math.log10(((hi - lo) * (hi - lo)) / mse);
}

const SEEDS = [3, 14, 15];

async function floats(gen: Generator, seeds: number[], cond: boolean): Promise<FloatImage[]> {
  return (await gen.generate({
    seeds,
    output: 'float32',
    noiseMode: gen.info.arch === 'progan' ? undefined : 'const',
    ...(cond ? { classIndex: seeds.map((s) => s % gen.info.cDim) } : {}),
  })) as FloatImage[];
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

function bf16Suite(name: string, source: () => string, cond: boolean): void {
  let f32: Generator;
  let b16: Generator | undefined;
  beforeAll(async () => {
    f32 = await loadGenerator(source(), { device: 'cpu' });
    if (AMX) b16 = await loadGenerator(source(), { device: 'cpu', precision: 'bf16' });
  });
  afterAll(() => {
    f32?.dispose();
    b16?.dispose();
  });

  it.runIf(AMX)(`${name}: bf16 within 40 dB PSNR of fp32, not the fp32 bits`, async () => {
    const ref = await floats(f32, SEEDS, cond);
    const got = await floats(b16!, SEEDS, cond);
    for (let i = 0; i < SEEDS.length; i++) {
      const db = psnr(got[i]!.data, ref[i]!.data);
      console.log(`cpu-bf16: ${name} seed ${SEEDS[i]}: bf16 vs fp32 PSNR ${db.toFixed(1)} dB`);
      expect(db, `seed ${SEEDS[i]}: ${db.toFixed(1)} dB`).toBeGreaterThanOrEqual(40);
      expect(sameBits(got[i]!.data, ref[i]!.data), `seed ${SEEDS[i]}: the bf16 path ran`).toBe(false);
    }
  });

  it.runIf(AMX)(`${name}: bf16 images do not depend on the batch`, async () => {
    const together = await floats(b16!, SEEDS, cond);
    for (let i = 0; i < SEEDS.length; i++) {
      const [alone] = await floats(b16!, [SEEDS[i]!], cond);
      expect(sameBits(alone!.data, together[i]!.data), `seed ${SEEDS[i]}`).toBe(true);
    }
  });

  it.runIf(!AMX)(`${name}: bf16 refused without AMX`, async () => {
    await rejectsWith(loadGenerator(source(), { device: 'cpu', precision: 'bf16' }), 'ERR_NATIVE', /AMX/);
  });
}

describeFixtures('cpu bf16: gray16.pkl', () => bf16Suite('gray16', () => fixturePath('gray16.pkl'), false));
describeFixtures('cpu bf16: cond32.pkl', () => bf16Suite('cond32', () => fixturePath('cond32.pkl'), true));
describe('cpu bf16: the default ProGAN model', () => bf16Suite('progan', () => DEFAULT_MODEL, false));

describe('cpu bf16: FACEGAN_CPU_ISA=avx2', () => {
  it('refuses bf16 (the avx512 kernels are not in use)', async () => {
    const saved = process.env.FACEGAN_CPU_ISA;
    process.env.FACEGAN_CPU_ISA = 'avx2';
    try {
      await rejectsWith(loadGenerator(DEFAULT_MODEL, { device: 'cpu', precision: 'bf16' }), 'ERR_NATIVE', /precision bf16 needs AMX-BF16/);
    } finally {
      if (saved === undefined) delete process.env.FACEGAN_CPU_ISA;
      else process.env.FACEGAN_CPU_ISA = saved;
    }
  });
});
