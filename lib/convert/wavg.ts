/**
 * The average w of a StyleGAN2 checkpoint that does not store one (rosinality train.py
 * checkpoints, see docs/rosinality.md): the mean of the mapping of `samples` random z, as
 * rosinality's `Generator.mean_latent(4096)` computes it — with numpy's RandomState(seed) instead
 * of torch's unseeded `randn`, so that it is the same on every load and every machine. Computed by
 * the CPU engine (fp32, whatever device the generator is then loaded on; float64 sum), ψ = 1 so
 * that the provisional w_avg (zeros) does not enter.
 */
import { FaceganError, engineError } from '../errors.js';
import { native, type NativeTensor } from '../native.js';
import type { WAvgOrigin } from './rosinality.js';
import type { StyleGAN2Config } from './stylegan2.js';

/** z per engine call while estimating (bounds the ws held at once). */
const CHUNK = 256;

/**
 * Returns the mean over i < samples of mapping(z_i) (row 0 of the ws; ψ = 1 rows are equal), with
 * z = numpy.random.RandomState(seed).randn(samples, z_dim). `tensors` must hold every canonical
 * tensor (`mapping.w_avg` is not used: at ψ = 1 the zeros placeholder gives w exactly).
 * @throws FaceganError ERR_NATIVE (no engine), ERR_NON_FINITE (the mapping overflows).
 */
export async function computeWAvg(
  config: { c_dim: number; z_dim: number; w_dim: number; num_ws: number },
  tensors: readonly NativeTensor[],
  samples: number,
  seed: number,
): Promise<Float32Array> {
  if (config.c_dim !== 0) throw new FaceganError('ERR_UNSUPPORTED_ARCH', 'Cannot estimate w_avg of a conditional generator (it depends on the class)');
  const addon = native();
  let engine;
  try {
    engine = await addon.createGenerator(JSON.stringify(config), tensors as NativeTensor[], { backend: 'cpu', deviceIndex: 0, precision: 'fp32', threads: 0 });
  } catch (err) {
    throw new FaceganError('ERR_NATIVE', `Could not create the CPU engine to compute w_avg: ${(err as Error).message}`, { cause: err });
  }
  try {
    const { z_dim: zDim, w_dim: wDim, num_ws: numWs } = config;
    const z64 = addon.numpyRandn(seed, samples * zDim);
    const sum = new Float64Array(wDim);
    for (let start = 0; start < samples; start += CHUNK) {
      const n = Math.min(CHUNK, samples - start);
      const z = Float32Array.from(z64.subarray(start * zDim, (start + n) * zDim));
      let ws: Float32Array;
      try {
        ws = await engine.mapping({ z });
      } catch (err) {
        throw engineError(err, false);
      }
      for (let i = 0; i < n; i++) {
        const row = i * numWs * wDim;
        for (let k = 0; k < wDim; k++) sum[k]! += ws[row + k]!;
      }
    }
    const avg = new Float32Array(wDim);
    for (let k = 0; k < wDim; k++) avg[k] = sum[k]! / samples;
    return avg;
  } finally {
    engine.dispose();
  }
}

/**
 * For a checkpoint whose w_avg is computed (`wAvg.kind === 'computed'`, a rosinality checkpoint
 * without `latent_avg`): replaces the zeros placeholder in `mapping.w_avg` with
 * {@link computeWAvg}'s estimate, in place. Others: unchanged. Call it once per read checkpoint.
 */
export async function fillComputedWAvg<T extends { config: object; tensors: Map<string, { dtype: string; shape: number[]; data: Float32Array | Uint16Array }>; wAvg?: WAvgOrigin }>(ckpt: T): Promise<T> {
  const w = ckpt.wAvg;
  if (w?.kind !== 'computed') return ckpt;
  const slot = ckpt.tensors.get('mapping.w_avg');
  if (slot === undefined) throw new Error('internal: no mapping.w_avg to fill');
  const list = [...ckpt.tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: t.data }) as NativeTensor);
  slot.data = await computeWAvg(ckpt.config as StyleGAN2Config, list, w.samples, w.seed);
  return ckpt;
}
