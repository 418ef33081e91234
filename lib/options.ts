/**
 * Every user option is checked here, in JS, before anything reaches C++. Each failure is a
 * FaceganError('ERR_INVALID_OPTION') whose message names the option, what is allowed and what
 * was received.
 */
import { FaceganError, invalidOption } from './errors.js';

export type Device = 'auto' | 'cpu' | 'cuda';
export type Precision = 'fp32' | 'fp16' | 'bf16';
export type NoiseMode = 'const' | 'random' | 'none';
export type OutputKind = 'uint8' | 'float32';

/** The most images one call may ask for. */
export const MAX_IMAGES_PER_CALL = 1024;
/** The most output bytes one call may produce (the images handed back to JS). */
export const MAX_OUTPUT_BYTES = 2 ** 31;
const UINT32_LIMIT = 2 ** 32;
/** Truncation ψ is accepted in [−MAX_PSI, MAX_PSI] (1 = none; useful values lie in [−1, 2]). */
export const MAX_PSI = 100;

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

/**
 * Reads an options object once, into a plain snapshot of its enumerable properties (own and
 * inherited): the options are then checked and used from that snapshot, so a getter cannot
 * give one value to the checks and another to the engine. A getter or proxy that throws while
 * it is read gives ERR_INVALID_OPTION (with the thrown error as `cause`).
 */
export function checkObject(name: string, v: unknown): Record<string, unknown> {
  if (v === undefined) return {};
  if (!isPlainObject(v)) throw invalidOption(name, 'an object', v);
  const snapshot: Record<string, unknown> = {};
  let key = '';
  try {
    for (key in v) snapshot[key] = v[key];
  } catch (err) {
    throw new FaceganError('ERR_INVALID_OPTION', `Reading ${name}${key ? `.${key}` : ''} threw: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
  return snapshot;
}

/**
 * The elements of an array option as a dense copy, read once: a hole (`new Array(3)`, `[1, , 2]`)
 * or an element getter that throws gives ERR_INVALID_OPTION naming the index.
 */
export function denseArray(name: string, arr: readonly unknown[], expected: string): unknown[] {
  const out = new Array<unknown>(arr.length);
  for (let i = 0; i < arr.length; i++) {
    if (!(i in arr)) throw invalidOption(`${name}[${i}]`, `${expected} (the array has a hole there)`, undefined);
    try {
      out[i] = arr[i];
    } catch (err) {
      throw new FaceganError('ERR_INVALID_OPTION', `Reading ${name}[${i}] threw: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
  }
  return out;
}

export function checkOneOf<T extends string>(name: string, v: unknown, allowed: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw invalidOption(name, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, v);
  }
  return v as T;
}

export function checkInteger(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalidOption(name, `an integer in [${min}, ${max}]`, v);
  }
  return v;
}

export function checkSeed(name: string, v: unknown): number {
  return checkInteger(name, v, 0, UINT32_LIMIT - 1);
}

export function checkFinite(name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidOption(name, 'a finite number', v);
  return v;
}

export interface ModelShape {
  zDim: number;
  cDim: number;
  numWs: number;
  wDim: number;
  resolution: number;
  imageChannels: number;
}

export interface LatentRequest {
  /** Seeds, one per image, when the latents come from seeds. */
  seeds?: number[];
  /** n × zDim float32 latents (already cast) when given directly. */
  z?: Float32Array;
  count: number;
}

/** Reads `seed` | `seeds` | `z` (exactly one) into a latent request. */
export function checkLatents(opts: Record<string, unknown>, shape: ModelShape): LatentRequest {
  const given = (['seed', 'seeds', 'z'] as const).filter((k) => opts[k] !== undefined);
  if (given.length > 1) throw invalidOption('seed / seeds / z', 'only one of them', given.join(' and '));
  if (given.length === 0) throw invalidOption('seed / seeds / z', 'one of them', undefined);
  if (opts.seed !== undefined) return { seeds: [checkSeed('seed', opts.seed)], count: 1 };
  if (opts.seeds !== undefined) {
    const seeds = opts.seeds;
    if (!Array.isArray(seeds) || seeds.length < 1 || seeds.length > MAX_IMAGES_PER_CALL) {
      throw invalidOption('seeds', `an array of 1 to ${MAX_IMAGES_PER_CALL} seeds`, seeds);
    }
    const dense = denseArray('seeds', seeds, 'a seed');
    return { seeds: dense.map((s, i) => checkSeed(`seeds[${i}]`, s)), count: dense.length };
  }
  const z = opts.z;
  if (!(z instanceof Float32Array || z instanceof Float64Array || Array.isArray(z))) {
    throw invalidOption('z', `a Float32Array, Float64Array or number[] of n × ${shape.zDim} values`, z);
  }
  const n = z.length / shape.zDim;
  if (z.length === 0 || !Number.isInteger(n)) {
    throw invalidOption('z', `n × ${shape.zDim} values (zDim = ${shape.zDim})`, z);
  }
  if (n > MAX_IMAGES_PER_CALL) throw invalidOption('z', `at most ${MAX_IMAGES_PER_CALL} latents`, z);
  const out = Float32Array.from((Array.isArray(z) ? denseArray('z', z, 'a finite number') : z) as ArrayLike<number>);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) throw invalidOption(`z[${i}]`, 'a finite number', (z as ArrayLike<number>)[i]);
  }
  return { z: out, count: n };
}

export interface TruncationOptions {
  psi: number;
  cutoff: number;
}

export function checkTruncation(opts: Record<string, unknown>, shape: ModelShape): TruncationOptions {
  const psi = checkFinite('psi', opts.psi, 1);
  if (Math.abs(psi) > MAX_PSI) throw invalidOption('psi', `a number in [${-MAX_PSI}, ${MAX_PSI}]`, psi);
  const c = opts.truncationCutoff;
  const cutoff = c === undefined || c === null ? -1 : checkInteger('truncationCutoff', c, 0, shape.numWs);
  return { psi, cutoff };
}

/** One-hot class labels (n × cDim), or null for an unconditional model. */
export function checkClasses(opts: Record<string, unknown>, shape: ModelShape, count: number): Float32Array | null {
  const ci = opts.classIndex;
  if (shape.cDim === 0) {
    if (ci !== undefined) throw invalidOption('classIndex', 'nothing: this model is unconditional (cDim = 0)', ci);
    return null;
  }
  if (ci === undefined) {
    throw invalidOption('classIndex', `an integer in [0, ${shape.cDim - 1}] (this model is conditional)`, ci);
  }
  const list = Array.isArray(ci) ? denseArray('classIndex', ci, `an integer in [0, ${shape.cDim - 1}]`) : new Array<unknown>(count).fill(ci);
  if (list.length !== count) throw invalidOption('classIndex', `a number or an array of ${count} numbers`, ci);
  const c = new Float32Array(count * shape.cDim);
  for (let i = 0; i < count; i++) {
    c[i * shape.cDim + checkInteger(Array.isArray(ci) ? `classIndex[${i}]` : 'classIndex', list[i], 0, shape.cDim - 1)] = 1;
  }
  return c;
}

export interface SynthesisOptions {
  noiseMode: NoiseMode;
  noiseSeed: number | undefined;
  output: OutputKind;
}

export function checkSynthesisOptions(opts: Record<string, unknown>, shape: ModelShape, count: number): SynthesisOptions {
  const noiseMode = checkOneOf('noiseMode', opts.noiseMode, ['const', 'random', 'none'] as const, 'const');
  const noiseSeed =
    opts.noiseSeed === undefined ? undefined : checkInteger('noiseSeed', opts.noiseSeed, 0, Number.MAX_SAFE_INTEGER);
  const output = checkOneOf('output', opts.output, ['uint8', 'float32'] as const, 'uint8');
  const bytes = count * shape.imageChannels * shape.resolution ** 2 * (output === 'float32' ? 4 : 1);
  if (bytes > MAX_OUTPUT_BYTES) {
    throw invalidOption('the number of images', `at most ${MAX_OUTPUT_BYTES} bytes of output per call`, `${count} images (${bytes} bytes)`);
  }
  return { noiseMode, noiseSeed, output };
}

/**
 * ws given to synthesis(): n × numWs × wDim finite float32 values. Returns a copy made now (and
 * checked): changing the caller's array after the call is made changes nothing.
 */
export function checkWs(ws: unknown, shape: ModelShape): { ws: Float32Array; count: number } {
  const row = shape.numWs * shape.wDim;
  if (!(ws instanceof Float32Array)) throw invalidOption('ws', `a Float32Array of n × ${shape.numWs} × ${shape.wDim} values`, ws);
  const n = ws.length / row;
  if (ws.length === 0 || !Number.isInteger(n)) {
    throw invalidOption('ws', `n × ${shape.numWs} × ${shape.wDim} values`, ws);
  }
  if (n > MAX_IMAGES_PER_CALL) throw invalidOption('ws', `at most ${MAX_IMAGES_PER_CALL} rows of ${row} values`, ws);
  const copy = ws.slice();
  for (let i = 0; i < copy.length; i++) {
    if (!Number.isFinite(copy[i])) throw invalidOption(`ws[${i}]`, 'a finite number', copy[i]);
  }
  return { ws: copy, count: n };
}
