/**
 * The ProGAN generator's config and canonical tensors (docs/progan.md): the checks shared by the
 * facegan-file reader, the ONNX exporter and anything else that takes a ProGAN model.
 */
import { FaceganError } from '../errors.js';
import { engineTensorList } from './tensor-list.js';
import type { ProganConfig } from './tfjs.js';

export type { ProganConfig } from './tfjs.js';

const CONFIG_KEYS = [
  'arch', 'z_dim', 'img_resolution', 'img_channels', 'channels', 'lrelu_slope', 'pixelnorm_eps',
  'normalize_latent', 'upsample', 'weight_gain', 'output',
] as const;

function corrupt(message: string): FaceganError {
  return new FaceganError('ERR_CORRUPT_FILE', `Invalid ProGAN config: ${message}`);
}

function unsupported(message: string): FaceganError {
  return new FaceganError('ERR_UNSUPPORTED_ARCH', `Unsupported ProGAN variant: ${message}`);
}

/** The largest |output.scale|, |output.offset| and |tfhub_clip| accepted (the original: 127.5, 63.75, [0, 1]). */
const MAX_OUTPUT_MAP = 1e6;

// At most 65536: the engine's bound on widths and z_dim (native/core/network.cc).
const isPositiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 1 << 16;
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * Checks a ProGAN config and returns it typed.
 * @throws FaceganError ERR_CORRUPT_FILE naming the first bad field; ERR_UNSUPPORTED_ARCH for a
 *   variant this engine does not run (another upsampling, unfolded weight gains, …).
 */
export function validateProganConfig(raw: unknown): ProganConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw corrupt('not an object');
  const c = raw as Record<string, unknown>;
  if (c.arch !== 'progan') throw corrupt(`arch must be "progan" but is ${JSON.stringify(c.arch)}`);
  for (const key of Object.keys(c)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) throw corrupt(`unknown field ${JSON.stringify(key)}`);
  }
  const R = c.img_resolution;
  if (!isPositiveInt(R) || R < 4 || R > 1024 || (R & (R - 1)) !== 0) throw corrupt('img_resolution must be a power of two in [4, 1024]');
  if (!isPositiveInt(c.z_dim)) throw corrupt('z_dim must be a positive integer');
  if (!isPositiveInt(c.img_channels) || c.img_channels > 4) throw corrupt('img_channels must be an integer in [1, 4]');
  const channels = c.channels;
  if (!Array.isArray(channels) || channels.length !== Math.log2(R) - 1 || !channels.every(isPositiveInt)) {
    throw corrupt(`channels must list ${Math.log2(R) - 1} positive integers (one per resolution 4…${R})`);
  }
  if (!isFiniteNumber(c.lrelu_slope) || c.lrelu_slope < 0 || c.lrelu_slope >= 1) throw corrupt('lrelu_slope must be in [0, 1)');
  if (!isFiniteNumber(c.pixelnorm_eps) || c.pixelnorm_eps <= 0 || c.pixelnorm_eps >= 1) throw corrupt('pixelnorm_eps must be a number in (0, 1) (the original: 1e-8)');
  if (c.normalize_latent !== true) throw unsupported('a latent without pixel normalisation');
  if (c.upsample !== 'nearest') throw unsupported(`upsample ${JSON.stringify(c.upsample)} (only "nearest")`);
  if (c.weight_gain !== 1) throw unsupported(`weight_gain ${JSON.stringify(c.weight_gain)} (only 1: gains folded into the weights)`);
  const out = c.output as Record<string, unknown> | undefined;
  if (
    out === null || typeof out !== 'object' || !isFiniteNumber(out.scale) || !isFiniteNumber(out.offset) ||
    !Array.isArray(out.tfhub_clip) || out.tfhub_clip.length !== 2 || !out.tfhub_clip.every(isFiniteNumber)
  ) {
    throw corrupt('output must be { tfhub_clip: [lo, hi], scale, offset } with finite numbers');
  }
  const bounded = (v: number): boolean => Math.abs(v) <= MAX_OUTPUT_MAP;
  if (!bounded(out.scale) || !bounded(out.offset) || out.tfhub_clip.some((v) => !bounded(v as number)) || (out.tfhub_clip[0] as number) > (out.tfhub_clip[1] as number)) {
    throw corrupt(`output.scale, output.offset and output.tfhub_clip must lie in [${-MAX_OUTPUT_MAP}, ${MAX_OUTPUT_MAP}] with tfhub_clip[0] <= tfhub_clip[1]`);
  }
  return raw as ProganConfig;
}

/**
 * Every canonical ProGAN tensor with its shape (docs/progan.md), in canonical order: the engine's
 * list ({@link engineTensorList}, the one definition of the weight format).
 */
export function proganTensorShapes(config: ProganConfig): Map<string, number[]> {
  return engineTensorList(config).required;
}

/** Checks that `tensors` holds exactly the canonical tensors of `config`, with their shapes. */
export function validateProganTensors(config: ProganConfig, tensors: ReadonlyMap<string, { readonly shape: readonly number[] }>): void {
  const expected = proganTensorShapes(config);
  for (const [name, shape] of expected) {
    const t = tensors.get(name);
    if (!t) throw new FaceganError('ERR_CORRUPT_FILE', `Missing tensor ${name}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new FaceganError('ERR_CORRUPT_FILE', `Tensor ${name} has shape [${t.shape.join(', ')}] but the config requires [${shape.join(', ')}]`);
    }
  }
  for (const name of tensors.keys()) {
    if (!expected.has(name)) throw new FaceganError('ERR_CORRUPT_FILE', `Unexpected tensor ${JSON.stringify(name)} for this ProGAN config`);
  }
}
