/**
 * rosinality/stylegan2-pytorch checkpoints (`.pt` files: `torch.save` of a dict with `g_ema`,
 * `latent_avg` and optionally `g`, `d`, `g_optim`, `d_optim`, `args`, …) → the canonical
 * StyleGAN2-ADA tensors of docs/weights-format.md. See docs/rosinality.md for the mapping.
 *
 * train.py's own checkpoints (`{g, d, g_ema, g_optim, d_optim, args, ada_aug_p}`) and bare state
 * dicts carry no `latent_avg`: their `mapping.w_avg` is a placeholder of zeros and the result
 * says `wAvg: { kind: 'computed', … }`; `readCheckpoint` and `loadGenerator` then replace the
 * placeholder with the mean of the mapping of W_AVG_SAMPLES random z (see
 * lib/convert/wavg.ts), as rosinality's `mean_latent` does.
 *
 * The configuration is read from the tensors' shapes: resolution from the number of layers,
 * channels per resolution (rosinality's `channel_multiplier` table) reduced to the smallest
 * `channel_base` with `channel_max` = the 4×4 channels, `n_mlp` and `style_dim` from `style.*`.
 * The mapping's lr multiplier (rosinality's `lr_mlp`, 0.01) is not stored in a checkpoint and
 * is assumed.
 */
import { FaceganError } from '../errors.js';
import {
  BASE_GLOBALS, PyDict, PyObject, globalTable, plainClass, pyTypeName,
  type GlobalTable, type PyValue,
} from './pickle.js';
import {
  blockResolutions, channelsAt, expectedTensorShapes, validateConfig,
  type ConvertedGenerator, type Float32Tensor, type StyleGAN2Config,
} from './stylegan2.js';
import { TORCH_TENSOR_GLOBALS, TorchTensor, isLegacyTorchStream, readLegacyTorchStream } from './torch.js';
import { looksLikeZip, readTorchZip } from './zip.js';

export const SOURCE_ROSINALITY = 'rosinality stylegan2-pytorch checkpoint';

/**
 * The globals a rosinality checkpoint may name: containers, tensors and `argparse.Namespace`
 * (train.py saves its `args`), which is read as inert data.
 */
export const ROSINALITY_GLOBALS: GlobalTable = globalTable(
  BASE_GLOBALS,
  TORCH_TENSOR_GLOBALS,
  [['argparse.Namespace', plainClass('argparse', 'Namespace')]],
);

/** rosinality's `lr_mlp` default; checkpoints do not record it. */
const MAPPING_LR_MULTIPLIER = 0.01;

/** How many z the average w of a checkpoint without `latent_avg` is estimated from (rosinality's `mean_latent(4096)`). */
export const W_AVG_SAMPLES = 4096;
/** Their seed: z = numpy.random.RandomState(W_AVG_SEED).randn(W_AVG_SAMPLES, z_dim). */
export const W_AVG_SEED = 0;

/**
 * Where `mapping.w_avg` came from: stored in the file, or (a rosinality checkpoint without
 * `latent_avg`) computed as the mean of the mapping of `samples` z drawn with `seed`;  (the
 * converter leaves zeros in the tensor; lib/convert/wavg.ts's fillComputedWAvg computes it).
 */
export type WAvgOrigin = { kind: 'stored' } | { kind: 'computed'; samples: number; seed: number };

/** A converted rosinality checkpoint; `wAvg.kind === 'computed'`: `mapping.w_avg` holds zeros until computed. */
export interface RosinalityGenerator extends ConvertedGenerator {
  wAvg: WAvgOrigin;
}

function corrupt(message: string): FaceganError {
  return new FaceganError('ERR_CORRUPT_FILE', `Corrupt rosinality checkpoint: ${message}`);
}

function unsupported(message: string): FaceganError {
  return new FaceganError('ERR_UNSUPPORTED_ARCH', `Unsupported rosinality checkpoint: ${message}`);
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** True for a dict that looks like a rosinality Generator state dict. */
function isGeneratorStateDict(v: PyValue | undefined): boolean {
  return v instanceof PyDict && v.has('input.input') && v.has('style.1.weight');
}

/**
 * Reads a rosinality `.pt` file from memory: a PyTorch zip archive or a legacy (pre-1.6)
 * `torch.save` stream.
 * @throws FaceganError ERR_UNKNOWN_FORMAT, ERR_TRUNCATED_FILE, ERR_CORRUPT_FILE,
 *   ERR_FORBIDDEN_GLOBAL, ERR_UNSUPPORTED_ARCH.
 */
export function readRosinalityCheckpoint(buf: Uint8Array): RosinalityGenerator {
  let value: PyValue;
  if (looksLikeZip(buf)) value = readTorchZip(buf, { globals: ROSINALITY_GLOBALS, what: 'PyTorch checkpoint' }).value;
  else if (isLegacyTorchStream(buf)) value = readLegacyTorchStream(buf, 'PyTorch checkpoint (legacy torch.save stream)', ROSINALITY_GLOBALS);
  else throw new FaceganError('ERR_UNKNOWN_FORMAT', 'Not a PyTorch checkpoint (neither a torch.save zip archive nor a legacy torch.save stream)');
  return convertRosinalityCheckpoint(value);
}

function tensorOf(v: PyValue | undefined, what: string): TorchTensor {
  if (!(v instanceof TorchTensor)) throw corrupt(`${what} is ${pyTypeName(v)}, not a tensor`);
  return v;
}

/**
 * Converts the object of a rosinality checkpoint: a dict with `g_ema` (the generator's state
 * dict; `g`, `d`, `g_optim`, `d_optim` are not looked at) and `latent_avg` when convert_weight.py
 * wrote it (train.py does not), or a bare generator state dict. Without `latent_avg` the result's
 * w_avg is to be computed (`wAvg.kind === 'computed'`).
 */
export function convertRosinalityCheckpoint(value: PyValue): RosinalityGenerator {
  if (!(value instanceof PyDict)) throw unsupported(`the checkpoint is ${pyTypeName(value)}, not a dict with g_ema`);
  let state: PyDict;
  let latentAvg: PyValue | undefined;
  if (value.has('g_ema')) {
    const g = value.get('g_ema');
    if (!(g instanceof PyDict)) throw corrupt(`g_ema is ${pyTypeName(g)}, not a state dict`);
    state = g;
    latentAvg = value.get('latent_avg');
    const args = value.get('args');
    if (args instanceof PyObject && args.state instanceof PyDict) {
      const arch = args.state.get('arch');
      if (arch !== undefined && arch !== 'stylegan2') throw unsupported(`args.arch is ${JSON.stringify(String(arch).slice(0, 40))} (only stylegan2 is supported, not SWAGAN)`);
    }
  } else if (isGeneratorStateDict(value)) {
    state = value;
  } else {
    const keys = [...value.keys()].slice(0, 8).map((k) => JSON.stringify(String(k).slice(0, 40)));
    throw unsupported(`a dict without g_ema (keys: ${keys.join(', ')})`);
  }
  const tensors = new Map<string, TorchTensor>();
  for (const [k, v] of state.entries()) {
    if (typeof k !== 'string') throw corrupt('g_ema has a non-string key');
    tensors.set(k, tensorOf(v, `g_ema[${JSON.stringify(k.slice(0, 60))}]`));
  }
  if (latentAvg === undefined || latentAvg === null) {
    // train.py's checkpoints (and bare state dicts) do not store the average w: computed later.
    return { ...convertRosinalityStateDict(tensors, null), wAvg: { kind: 'computed', samples: W_AVG_SAMPLES, seed: W_AVG_SEED } };
  }
  return { ...convertRosinalityStateDict(tensors, tensorOf(latentAvg, 'latent_avg')), wAvg: { kind: 'stored' } };
}

/** The smallest channel_base (with channel_max = C(4)) for which min(base/r, max) gives `channels`. */
function channelConfig(channels: Map<number, number>): { channel_base: number; channel_max: number } {
  const max = channels.get(4)!;
  let lo = 1;
  let hi = Infinity;
  for (const [r, c] of channels) {
    if (c > max) throw unsupported(`${c} channels at ${r}×${r} but ${max} at 4×4 (channels must not grow with resolution)`);
    // floor(base / r) must be c, or anything ≥ c where c is the maximum.
    lo = Math.max(lo, c * r);
    if (c < max) hi = Math.min(hi, (c + 1) * r - 1);
  }
  const table = [...channels].map(([r, c]) => `${r}: ${c}`).join(', ');
  if (lo > hi) throw unsupported(`its channels {${table}} are not min(channel_base / r, channel_max) for any channel_base`);
  const config = { channel_base: lo, channel_max: max };
  for (const [r, c] of channels) if (channelsAt(config, r) !== c) throw new Error(`internal: channel inference failed at ${r}`);
  return config;
}

type Transform = 'copy' | 'conv3x3' | 'squeeze';

/**
 * Maps a rosinality Generator state dict (and `latent_avg`; null: `mapping.w_avg` is zeros, a
 * placeholder for the computed average) onto the canonical tensors.
 * @throws FaceganError ERR_CORRUPT_FILE (missing or misshapen tensors), ERR_UNSUPPORTED_ARCH
 *   (unknown tensors, a non-standard blur kernel, channels the canonical config cannot express).
 */
export function convertRosinalityStateDict(state: ReadonlyMap<string, TorchTensor>, latentAvg: TorchTensor | null): ConvertedGenerator {
  const get = (name: string): TorchTensor => {
    const t = state.get(name);
    if (t === undefined) throw corrupt(`g_ema has no tensor ${name}`);
    return t;
  };
  const dim = (name: string, rank: number, axis: number): number => {
    const t = get(name);
    if (t.shape.length !== rank) throw corrupt(`${name} has shape ${shapeText(t.shape)} (expected rank ${rank})`);
    return t.shape[axis]!;
  };

  // Mapping: style.0 is PixelNorm (no parameters), style.1 … style.n_mlp are EqualLinear.
  let nMlp = 0;
  while (state.has(`style.${nMlp + 1}.weight`)) nMlp++;
  if (nMlp === 0) throw corrupt('g_ema has no style.1.weight (no mapping network)');
  const wDim = dim('style.1.weight', 2, 0);
  const zDim = dim('style.1.weight', 2, 1);

  // Synthesis: convs.{0 … 2(L−3)+1} and to_rgbs.{0 … L−3} for a 2^L-pixel generator.
  let nConvs = 0;
  while (state.has(`convs.${nConvs}.conv.weight`)) nConvs++;
  let nRgbs = 0;
  while (state.has(`to_rgbs.${nRgbs}.conv.weight`)) nRgbs++;
  if (nConvs % 2 !== 0 || nConvs !== 2 * nRgbs) throw corrupt(`g_ema has ${nConvs} convs and ${nRgbs} to_rgbs (expected two convs per to_rgb)`);
  const resolution = 4 * 2 ** nRgbs;
  if (resolution > 1024) throw unsupported(`a ${resolution}-pixel generator (at most 1024 is supported)`);
  const channels = new Map<number, number>([[4, dim('input.input', 4, 1)]]);
  for (let k = 0; k < nRgbs; k++) channels.set(8 * 2 ** k, dim(`convs.${2 * k}.conv.weight`, 5, 1));
  const imgChannels = dim('to_rgb1.conv.weight', 5, 1);

  const config: StyleGAN2Config = validateConfig({
    arch: 'stylegan2', z_dim: zDim, w_dim: wDim, c_dim: 0, img_resolution: resolution, img_channels: imgChannels,
    num_ws: 2 * Math.log2(resolution) - 2, mapping_layers: nMlp, mapping_lr_multiplier: MAPPING_LR_MULTIPLIER,
    ...channelConfig(channels), conv_clamp: null, num_fp16_res: 0,
  });

  // canonical name → [rosinality name, transform]; `latent_avg` is not in the state dict.
  const plan = new Map<string, [string, Transform]>();
  const used = new Set<string>();
  const layerName = (r: number, layer: string): string => {
    const k = Math.log2(r) - 3;
    if (layer === 'torgb') return r === 4 ? 'to_rgb1' : `to_rgbs.${k}`;
    if (r === 4) return 'conv1';
    return `convs.${2 * k + (layer === 'conv0' ? 0 : 1)}`;
  };
  const noiseIndex = (r: number, layer: string): number => (r === 4 ? 0 : 2 * (Math.log2(r) - 3) + (layer === 'conv0' ? 1 : 2));
  const expected = expectedTensorShapes(config);
  for (const name of expected.keys()) {
    let m: RegExpExecArray | null;
    if (name === 'mapping.w_avg') continue;
    if ((m = /^mapping\.fc(\d+)\.(weight|bias)$/.exec(name))) plan.set(name, [`style.${Number(m[1]) + 1}.${m[2]}`, 'copy']);
    else if (name === 'synthesis.b4.const') plan.set(name, ['input.input', 'squeeze']);
    else if ((m = /^synthesis\.b(\d+)\.(conv0|conv1|torgb)\.(.+)$/.exec(name))) {
      const r = Number(m[1]);
      const layer = m[2]!;
      const field = m[3]!;
      const src = layerName(r, layer);
      if (field === 'affine.weight') plan.set(name, [`${src}.conv.modulation.weight`, 'copy']);
      else if (field === 'affine.bias') plan.set(name, [`${src}.conv.modulation.bias`, 'copy']);
      else if (field === 'weight') plan.set(name, [`${src}.conv.weight`, layer === 'torgb' ? 'squeeze' : 'conv3x3']);
      else if (field === 'bias') plan.set(name, [layer === 'torgb' ? `${src}.bias` : `${src}.activate.bias`, 'squeeze']);
      else if (field === 'noise_strength') plan.set(name, [`${src}.noise.weight`, 'squeeze']);
      else if (field === 'noise_const') plan.set(name, [`noises.noise_${noiseIndex(r, layer)}`, 'squeeze']);
    }
    if (!plan.has(name)) throw new Error(`internal: no rosinality mapping for ${name}`);
  }

  const out = new Map<string, Float32Tensor>();
  for (const [name, shape] of expected) {
    if (name === 'mapping.w_avg') {
      const data = latentAvg === null ? new Float32Array(shape.reduce((a, b) => a * b, 1)) : squeezed(latentAvg, shape, 'latent_avg');
      out.set(name, { dtype: 'F32', shape: shape.slice(), data });
      continue;
    }
    const [src, transform] = plan.get(name)!;
    const t = get(src);
    used.add(src);
    let data: Float32Array;
    if (transform === 'copy') {
      if (!sameShape(t.shape, shape)) throw corrupt(`${src} has shape ${shapeText(t.shape)} but the config requires ${shapeText(shape)} (for ${name})`);
      data = t.toFloat32();
    } else if (transform === 'squeeze') {
      data = squeezed(t, shape, src);
    } else {
      // [1, out, in, 3, 3]; rosinality multiplies by 1/sqrt(in·9) before modulating and
      // demodulating, StyleGAN2-ADA does not: fold the factor in (exact, epsilon included).
      data = squeezed(t, shape, src);
      const scale = 1 / Math.sqrt(shape[1]! * shape[2]! * shape[3]!);
      for (let i = 0; i < data.length; i++) data[i] = data[i]! * scale;
    }
    out.set(name, { dtype: 'F32', shape: shape.slice(), data });
  }

  // The blur kernels of the up-convolutions and of the ToRGB skip upsampling: [1,3,3,1]⊗[1,3,3,1]/64·4.
  for (const r of blockResolutions(config)) {
    if (r === 4) continue;
    for (const name of [`${layerName(r, 'conv0')}.conv.blur.kernel`, `${layerName(r, 'torgb')}.upsample.kernel`]) {
      const t = state.get(name);
      if (t === undefined) continue;
      checkBlurKernel(name, t);
      used.add(name);
    }
  }
  for (const [name, t] of state) {
    if (!used.has(name)) throw unsupported(`unknown tensor ${JSON.stringify(name.slice(0, 80))} (shape ${shapeText(t.shape)})`);
  }
  return { config, tensors: out, source: SOURCE_ROSINALITY };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * The tensor's values if its shape is `target` up to axes of size 1 (e.g. `[1, 3, 1, 1]` for
 * `[3]`, `[1]` for a scalar): a pure reshape in C order.
 */
function squeezed(t: TorchTensor, target: readonly number[], name: string): Float32Array {
  const ok = t.shape.length <= target.length + 4 && sameShape(t.shape.filter((d) => d !== 1), target.filter((d) => d !== 1));
  if (!ok) throw corrupt(`${name} has shape ${shapeText(t.shape)}, which does not reshape to ${shapeText(target)}`);
  return t.toFloat32();
}

function checkBlurKernel(name: string, t: TorchTensor): void {
  const taps = [1, 3, 3, 1];
  const data = t.toFloat32();
  let ok = sameShape(t.shape, [4, 4]);
  for (let i = 0; ok && i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      if (Math.abs(data[i * 4 + j]! - (taps[i]! * taps[j]!) / 16) > 1e-6) { ok = false; break; }
    }
  }
  if (!ok) throw unsupported(`${name} is not the standard [1,3,3,1] blur kernel (with gain 4)`);
}
