/**
 * Checkpoint reading and conversion: StyleGAN2 network pickles (StyleGAN2-ADA / StyleGAN3-repo
 * PyTorch, TensorFlow StyleGAN2), rosinality `.pt` files, ProGAN TensorFlow.js graph models and
 * facegan safetensors files → `{ config, tensors }` with the canonical names of
 * docs/weights-format.md (StyleGAN2) and docs/progan.md (ProGAN), and conversion to facegan
 * safetensors.
 *
 * Nothing here runs Python or executes anything from a file: pickles are read by a restricted
 * reader with an allow-list of data-only globals (see `NETWORK_PICKLE_GLOBALS`).
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { FaceganError, invalidOption } from '../errors.js';
import { readRegularFile, sameFile, writeFileAtomic } from '../files.js';
import {
  bfloat16ToFloat32, float16ToFloat32, float32ToFloat16, halfBitsToNumber, looksLikeSafetensors, readSafetensors,
  writeSafetensors, type SafetensorsTensor,
} from '../safetensors.js';
import { listGlobals, unpickle } from './pickle.js';
import { proganTensorShapes, validateProganConfig, validateProganTensors, type ProganConfig } from './progan.js';
import { readRosinalityCheckpoint, type WAvgOrigin } from './rosinality.js';
import { readTfjsGraphModel } from './tfjs.js';
import { engineTensorList } from './tensor-list.js';
import { isLegacyTorchStream } from './torch.js';
import { fillComputedWAvg } from './wavg.js';
import {
  NETWORK_PICKLE_GLOBALS, checkResampleFilter, convertNetworkPickle, expectedTensorShapes,
  validateConfig, validateTensorShapes,
  type Float32Tensor, type StyleGAN2Config,
} from './stylegan2.js';

export type { Float32Tensor, StyleGAN2Config } from './stylegan2.js';
export type { ProganConfig } from './progan.js';

/** The configuration of any generator this library runs. */
export type GeneratorConfig = StyleGAN2Config | ProganConfig;
export { channelsAt, blockResolutions, expectedTensorShapes, validateConfig, validateTensorShapes } from './stylegan2.js';

/** A generator read from any supported file, every tensor float32. */
export interface Checkpoint {
  config: GeneratorConfig;
  /** Exactly the canonical tensors, in canonical order. */
  tensors: Map<string, Float32Tensor>;
  /**
   * What the weights were converted from: `stylegan2-ada-pytorch pickle`, `stylegan2-tf pickle`,
   * `rosinality stylegan2-pytorch checkpoint`, or for a facegan file the `source` recorded in it.
   */
  source: string;
  /** How this file was read (`zip`: a PyTorch zip archive, i.e. a torch.save `.pt` file). */
  format: 'pickle' | 'safetensors' | 'zip' | 'tfjs';
  /**
   * rosinality checkpoints: whether `mapping.w_avg` was stored (`latent_avg`) or is computed
   * (train.py checkpoints; readCheckpoint computes it, readCheckpointBuffer leaves zeros).
   */
  wAvg?: WAvgOrigin;
}

/** A tensor of a facegan safetensors file: F16/BF16 data are `Uint16Array`s of raw bits. */
export type ModelTensor =
  | { dtype: 'F32'; shape: number[]; data: Float32Array }
  | { dtype: 'F16' | 'BF16'; shape: number[]; data: Uint16Array };

export interface SafetensorsModel {
  config: GeneratorConfig;
  /** The canonical tensors, in canonical order, as views into the buffer where aligned. */
  tensors: Map<string, ModelTensor>;
  /** The `source` recorded in the file (informational; '' when absent). */
  source: string;
  /** The whole `__metadata__` map. */
  metadata: Record<string, string>;
}

/** The facegan format version this code writes and reads. */
export const FORMAT_VERSION = '1';

/** The (module.name) globals a network pickle may reference; all others are refused. */
export const PICKLE_ALLOW_LIST: readonly string[] = Object.freeze(listGlobals(NETWORK_PICKLE_GLOBALS));

export type CheckpointFormat = 'safetensors' | 'pickle' | 'zip' | 'unknown';

/** Guesses a file's format from its first bytes. */
export function sniffFormat(buf: Uint8Array): CheckpointFormat {
  if (looksLikeSafetensors(buf)) return 'safetensors';
  if (buf.length >= 2 && buf[0] === 0x80 && buf[1]! >= 2 && buf[1]! <= 5) return 'pickle';
  if (buf.length >= 4 && buf[0] === 0x50 && buf[1] === 0x4b && buf[2] === 0x03 && buf[3] === 0x04) return 'zip';
  return 'unknown';
}

/** Widens a tensor to float32 (F32 data is returned as is, not copied). */
export function toFloat32(tensor: ModelTensor | SafetensorsTensor | Float32Tensor): Float32Array {
  switch (tensor.dtype) {
    case 'F32': return tensor.data as Float32Array;
    case 'F16': return float16ToFloat32(tensor.data as Uint16Array);
    case 'BF16': return bfloat16ToFloat32(tensor.data as Uint16Array);
    default: throw new FaceganError('ERR_INVALID_OPTION', `Cannot widen a ${tensor.dtype} tensor to float32`);
  }
}

/**
 * Reads a facegan safetensors file (see docs/weights-format.md) without converting it: tensors
 * are views into `buffer` (F32, F16 or BF16; widen them with {@link toFloat32}).
 * @throws FaceganError ERR_UNKNOWN_FORMAT (not a facegan file), ERR_TRUNCATED_FILE,
 *   ERR_CORRUPT_FILE (naming the first bad field or tensor), ERR_UNSUPPORTED_ARCH.
 */
export function readSafetensorsModel(buffer: Uint8Array): SafetensorsModel {
  if (!(buffer instanceof Uint8Array)) throw invalidOption('buffer', 'a Buffer or Uint8Array', buffer);
  const file = readSafetensors(buffer);
  const meta = file.metadata;
  if (meta.format !== 'facegan') {
    throw new FaceganError('ERR_UNKNOWN_FORMAT', 'A safetensors file, but not a facegan weights file (its __metadata__ has no format = "facegan")');
  }
  if (meta.format_version !== FORMAT_VERSION) {
    throw new FaceganError('ERR_UNKNOWN_FORMAT', `Unsupported facegan format_version ${JSON.stringify(meta.format_version ?? null)} (this version reads ${FORMAT_VERSION})`);
  }
  if (meta.config === undefined) throw new FaceganError('ERR_CORRUPT_FILE', 'Corrupt facegan file: __metadata__ has no config');
  let raw: unknown;
  try {
    raw = JSON.parse(meta.config);
  } catch (err) {
    throw new FaceganError('ERR_CORRUPT_FILE', 'Corrupt facegan file: __metadata__.config is not valid JSON', { cause: err });
  }
  for (const [name, t] of file.tensors) {
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16') {
      throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt facegan file: tensor ${name} has dtype ${t.dtype} (expected F32, F16 or BF16)`);
    }
  }
  const tensors = new Map<string, ModelTensor>();
  if ((raw as { arch?: unknown } | null)?.arch === 'progan') {
    const config = validateProganConfig(raw);
    validateProganTensors(config, file.tensors);
    for (const name of proganTensorShapes(config).keys()) tensors.set(name, file.tensors.get(name) as ModelTensor);
    return { config, tensors, source: meta.source ?? '', metadata: meta };
  }
  const config = validateConfig(raw);
  const { optional } = engineTensorList(config);
  const present = new Map<string, ModelTensor>();
  for (const [name, t] of file.tensors) {
    if (optional.has(name)) {
      checkResampleFilter(name, t.shape, toFloat32(t));
      continue;
    }
    present.set(name, t as ModelTensor);
  }
  validateTensorShapes(config, present);
  for (const name of expectedTensorShapes(config).keys()) tensors.set(name, present.get(name)!);
  return { config, tensors, source: meta.source ?? '', metadata: meta };
}

/**
 * Refuses a checkpoint whose weights hold NaN or ±Inf (e.g. a flipped exponent bit): such a file
 * is damaged, and the engine would only ever give NaN images from it. F16 / BF16 tensors are
 * checked on their stored bits (all-ones exponent), without widening them.
 * @throws FaceganError ERR_CORRUPT_FILE naming the first such tensor and index.
 */
export function checkFiniteWeights(tensors: ReadonlyMap<string, { dtype?: string; data: Float32Array | Uint16Array }>): void {
  const bad = (name: string, value: number, i: number): FaceganError =>
    new FaceganError('ERR_CORRUPT_FILE', `Corrupt checkpoint: tensor ${name} holds ${value} at index ${i} (weights must be finite)`);
  const bf16 = new Float32Array(1);
  const bf16Bits = new Uint32Array(bf16.buffer);
  for (const [name, t] of tensors) {
    const d = t.data;
    if (d instanceof Uint16Array) {
      // Raw half-precision bits: an all-ones exponent is ±Inf or NaN.
      const mask = t.dtype === 'BF16' ? 0x7f80 : 0x7c00;
      for (let i = 0; i < d.length; i++) {
        if ((d[i]! & mask) === mask) {
          if (t.dtype === 'BF16') {
            bf16Bits[0] = d[i]! << 16;
            throw bad(name, bf16[0]!, i);
          }
          throw bad(name, halfBitsToNumber(d[i]!), i);
        }
      }
      continue;
    }
    for (let i = 0; i < d.length; i++) {
      // x - x is 0 for every finite x and NaN for NaN / ±Inf: one test per value.
      if (d[i]! - d[i]! !== 0) throw bad(name, d[i]!, i);
    }
  }
}

/**
 * Reads a checkpoint already in memory, sniffing its format by content.
 * @throws FaceganError ERR_UNKNOWN_FORMAT, ERR_TRUNCATED_FILE, ERR_CORRUPT_FILE,
 *   ERR_FORBIDDEN_GLOBAL, ERR_UNSUPPORTED_ARCH.
 */
export function readCheckpointBuffer(buffer: Uint8Array): Checkpoint {
  if (!(buffer instanceof Uint8Array)) throw invalidOption('src', 'a file path or a Buffer', buffer);
  const ckpt = decodeCheckpoint(buffer, true) as Checkpoint;
  checkFiniteWeights(ckpt.tensors);
  return ckpt;
}

/** A checkpoint as the engine takes it: a facegan file's F16 / BF16 tensors as stored (raw bits). */
export interface EngineCheckpoint {
  config: GeneratorConfig;
  /** Exactly the canonical tensors, in canonical order. */
  tensors: Map<string, ModelTensor>;
  source: string;
  format: Checkpoint['format'];
  /** As {@link Checkpoint.wAvg}; `computed`: `mapping.w_avg` holds zeros (the caller computes it, see wavg.ts). */
  wAvg?: WAvgOrigin;
}

/**
 * Reads a checkpoint for the engine (loadGenerator's reader, run in a worker thread): the same
 * files, checks and errors as {@link readCheckpoint}, but the tensors of a facegan safetensors
 * file are not widened: F16 / BF16 data stay `Uint16Array` views of their stored bits into the
 * file's buffer, which the engine widens once, as it builds the network.
 */
export async function readCheckpointForEngine(src: string): Promise<EngineCheckpoint> {
  if (typeof src !== 'string' || src.length === 0) throw invalidOption('src', 'a file path or a Buffer', src);
  if (isTfjsPath(src) || (await isDirectory(src))) return readCheckpoint(src);
  const buffer = await readRegularFile(src, 'checkpoint');
  const ckpt = decodeCheckpoint(buffer, false);
  checkFiniteWeights(ckpt.tensors);
  return ckpt;
}

function isTfjsPath(src: string): boolean {
  return src.endsWith('.json');
}

function isDirectory(src: string): Promise<boolean> {
  return stat(src).then((st) => st.isDirectory(), () => false);
}

function decodeCheckpoint(buffer: Uint8Array, widen: boolean): EngineCheckpoint {
  try {
    switch (sniffFormat(buffer)) {
      case 'safetensors': {
        const model = readSafetensorsModel(buffer);
        const source = model.source || 'facegan safetensors';
        if (!widen) return { config: model.config, tensors: model.tensors, source, format: 'safetensors' };
        const tensors = new Map<string, Float32Tensor>();
        for (const [name, t] of model.tensors) tensors.set(name, { dtype: 'F32', shape: t.shape, data: toFloat32(t) });
        return { config: model.config, tensors, source, format: 'safetensors' };
      }
      case 'pickle': {
        if (isLegacyTorchStream(buffer)) {
          // A pre-1.6 torch.save `.pt` file (rosinality checkpoints from that era).
          const g = readRosinalityCheckpoint(buffer);
          return { config: g.config, tensors: g.tensors, source: g.source, format: 'pickle', wAvg: g.wAvg };
        }
        const { value } = unpickle(buffer, { globals: NETWORK_PICKLE_GLOBALS, what: 'network pickle' });
        const g = convertNetworkPickle(value);
        return { config: g.config, tensors: g.tensors, source: g.source, format: 'pickle' };
      }
      case 'zip': {
        const g = readRosinalityCheckpoint(buffer);
        return { config: g.config, tensors: g.tensors, source: g.source, format: 'zip', wAvg: g.wAvg };
      }
      default:
        throw new FaceganError('ERR_UNKNOWN_FORMAT', 'Unknown checkpoint format: not a facegan safetensors file, a StyleGAN2 network pickle or a PyTorch archive');
    }
  } catch (err) {
    if (err instanceof FaceganError) throw err;
    // Every check should have produced a typed error; anything else is still a bad file.
    throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt checkpoint (${(err as Error)?.message ?? String(err)})`, { cause: err });
  }
}

/**
 * Reads a checkpoint from a path or a buffer: a facegan safetensors file (StyleGAN2 or ProGAN), a
 * TensorFlow.js ProGAN graph model (a directory or its model.json; paths only), a StyleGAN2-ADA /
 * StyleGAN3-repo PyTorch network pickle (uses `G_ema`), a TensorFlow StyleGAN2 pickle (uses
 * `Gs`) or a rosinality stylegan2-pytorch `.pt` checkpoint (uses `g_ema` and `latent_avg`, or
 * computes w_avg when there is none; zip or legacy torch.save format, see docs/rosinality.md). Tensors are float32; for a safetensors F32
 * file read from a buffer they are views into it.
 * Only regular files (and links to them) of at most MAX_INPUT_FILE_BYTES are read; weights must
 * be finite.
 * @throws FaceganError ERR_FILE_NOT_FOUND, ERR_FILE_TOO_LARGE, ERR_UNKNOWN_FORMAT (also: not a
 *   regular file), ERR_TRUNCATED_FILE, ERR_CORRUPT_FILE, ERR_FORBIDDEN_GLOBAL,
 *   ERR_UNSUPPORTED_ARCH, ERR_INVALID_OPTION.
 */
export async function readCheckpoint(src: string | Uint8Array): Promise<Checkpoint> {
  if (typeof src === 'string') {
    if (src.length === 0) throw invalidOption('src', 'a file path or a Buffer', src);
    if (isTfjsPath(src) || (await isDirectory(src))) {
      // A TensorFlow.js graph model (model.json + shards): the ProGAN reader.
      const g = await readTfjsGraphModel(src);
      checkFiniteWeights(g.tensors);
      return { config: g.config, tensors: g.tensors, source: 'tfjs graph model', format: 'tfjs' };
    }
    return fillComputedWAvg(readCheckpointBuffer(await readRegularFile(src, 'checkpoint')));
  }
  if (src instanceof Uint8Array) return fillComputedWAvg(readCheckpointBuffer(src));
  throw invalidOption('src', 'a file path or a Buffer', src);
}

function configJson(config: GeneratorConfig): string {
  if (config.arch === 'progan') return JSON.stringify(config);
  const c = config;
  return JSON.stringify({
    arch: c.arch, z_dim: c.z_dim, w_dim: c.w_dim, c_dim: c.c_dim,
    img_resolution: c.img_resolution, img_channels: c.img_channels, num_ws: c.num_ws,
    mapping_layers: c.mapping_layers, mapping_lr_multiplier: c.mapping_lr_multiplier,
    channel_base: c.channel_base, channel_max: c.channel_max,
    conv_clamp: c.conv_clamp, num_fp16_res: c.num_fp16_res,
  });
}

/**
 * Serialises a generator as a facegan safetensors file (metadata as in docs/weights-format.md).
 * With `half`, tensors are stored as F16 (round to nearest even); a value beyond the float16
 * range is an error rather than an infinity.
 */
export function serializeModel(
  model: { config: GeneratorConfig; tensors: ReadonlyMap<string, Float32Tensor>; source: string },
  options: { half?: boolean } = {},
): Buffer {
  let config: GeneratorConfig;
  let names: Iterable<string>;
  if (model.config?.arch === 'progan') {
    const progan = validateProganConfig(model.config);
    validateProganTensors(progan, model.tensors);
    config = progan;
    names = proganTensorShapes(progan).keys();
  } else {
    const stylegan = validateConfig(model.config);
    validateTensorShapes(stylegan, model.tensors);
    config = stylegan;
    names = expectedTensorShapes(stylegan).keys();
  }
  const out = new Map<string, SafetensorsTensor>();
  for (const name of names) {
    const t = model.tensors.get(name)!;
    if (!(t.data instanceof Float32Array) || t.data.length !== t.shape.reduce((a, b) => a * b, 1)) {
      throw invalidOption(`tensors.get('${name}').data`, 'a Float32Array matching its shape', t.data);
    }
    if (options.half === true) {
      const bits = float32ToFloat16(t.data);
      for (let i = 0; i < bits.length; i++) {
        if ((bits[i]! & 0x7c00) === 0x7c00 && Number.isFinite(t.data[i]!)) {
          throw new FaceganError('ERR_INVALID_OPTION', `Tensor ${name} holds ${t.data[i]}, beyond the float16 range; convert without half`);
        }
      }
      out.set(name, { dtype: 'F16', shape: t.shape.slice(), data: bits });
    } else {
      out.set(name, { dtype: 'F32', shape: t.shape.slice(), data: t.data });
    }
  }
  return writeSafetensors(out, {
    format: 'facegan',
    format_version: FORMAT_VERSION,
    config: configJson(config),
    source: model.source,
  });
}

/**
 * Converts a checkpoint (any format {@link readCheckpoint} reads) to a facegan safetensors file
 * at `dst` (written to a temporary file first, then renamed). `half: true` stores F16.
 */
export async function convertCheckpoint(src: string, dst: string, opts: { half?: boolean } = {}): Promise<void> {
  if (typeof src !== 'string' || src.length === 0) throw invalidOption('src', 'a file path', src);
  if (typeof dst !== 'string' || dst.length === 0) throw invalidOption('dst', 'a file path', dst);
  if (opts === null || typeof opts !== 'object') throw invalidOption('opts', 'an object', opts);
  if (opts.half !== undefined && typeof opts.half !== 'boolean') throw invalidOption('opts.half', 'a boolean', opts.half);
  // Writing over the source (the same path, or a hard / symbolic link to it) would destroy it.
  const model = await stat(src).then((st) => (st.isDirectory() ? path.join(src, 'model.json') : src), () => src);
  if (path.resolve(model) === path.resolve(dst) || (await sameFile(model, dst))) {
    throw invalidOption('dst', `a file other than the source ${JSON.stringify(src)}`, dst);
  }
  const ckpt = await readCheckpoint(src);
  await writeFileAtomic(dst, serializeModel(ckpt, { half: opts.half === true }));
}
