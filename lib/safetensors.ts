/**
 * Reading and writing safetensors files (https://github.com/huggingface/safetensors).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}`,
 * then the tensor data (little-endian, C order), offsets relative to the end of the header.
 *
 * Reading validates everything (sizes, offsets, dtypes, coverage) and returns typed-array views
 * INTO the given buffer when the data is aligned for its element type; misaligned tensors are
 * copied. Half-precision tensors (F16, BF16) are returned as `Uint16Array`s of raw bits; use
 * {@link float16ToFloat32} / {@link bfloat16ToFloat32} to widen them.
 */
import { FaceganError } from './errors.js';

export type SafetensorsDtype =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8'
  | 'U64' | 'U32' | 'U16' | 'U8'
  | 'BOOL';

/** Bytes per element of each dtype. */
export const DTYPE_SIZE: Readonly<Record<SafetensorsDtype, number>> = Object.freeze({
  F64: 8, F32: 4, F16: 2, BF16: 2,
  I64: 8, I32: 4, I16: 2, I8: 1,
  U64: 8, U32: 4, U16: 2, U8: 1,
  BOOL: 1,
});

export type TensorData =
  | Float64Array | Float32Array | Uint16Array
  | BigInt64Array | Int32Array | Int16Array | Int8Array
  | BigUint64Array | Uint32Array | Uint8Array;

/** One tensor. F16 and BF16 data are `Uint16Array`s of raw bits; BOOL is a `Uint8Array`. */
export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: TensorData;
}

export interface SafetensorsFile {
  /** In the order of the header. */
  tensors: Map<string, SafetensorsTensor>;
  /** The `__metadata__` string map ({} when absent). */
  metadata: Record<string, string>;
}

/** The largest header we accept (the reference implementation's limit). */
const MAX_HEADER_BYTES = 100_000_000;

type TypedArrayCtor = { new(buffer: ArrayBufferLike, byteOffset: number, length: number): TensorData; new(length: number): TensorData };

const CTORS: Record<SafetensorsDtype, TypedArrayCtor> = {
  F64: Float64Array, F32: Float32Array, F16: Uint16Array, BF16: Uint16Array,
  I64: BigInt64Array, I32: Int32Array, I16: Int16Array, I8: Int8Array,
  U64: BigUint64Array, U32: Uint32Array, U16: Uint16Array, U8: Uint8Array,
  BOOL: Uint8Array,
} as unknown as Record<SafetensorsDtype, TypedArrayCtor>;

function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, value);
}

function corrupt(message: string): FaceganError {
  return new FaceganError('ERR_CORRUPT_FILE', `Corrupt safetensors file: ${message}`);
}

/** A short printable form of a tensor name for error messages. */
function q(name: string): string {
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 77)}...` : name);
}

/**
 * True when the bytes look like the start of a safetensors file (a sane header length followed by
 * `{`). It does not validate the file: {@link readSafetensors} does.
 */
export function looksLikeSafetensors(buf: Uint8Array): boolean {
  if (buf.length < 9 || buf[8] !== 0x7b) return false;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32;
  return n >= 2 && n <= MAX_HEADER_BYTES;
}

/**
 * Parses a safetensors file. Tensors are views into `buf` where aligned (so `buf` must not be
 * modified while they are in use), copies otherwise.
 *
 * @throws FaceganError ERR_TRUNCATED_FILE when the file ends before its header says it should,
 *   ERR_CORRUPT_FILE for any inconsistency (bad JSON, unknown dtype, size mismatch, overlapping
 *   or uncovered data ranges, bad metadata).
 */
export function readSafetensors(buf: Uint8Array): SafetensorsFile {
  if (!(buf instanceof Uint8Array)) throw new FaceganError('ERR_INVALID_OPTION', 'readSafetensors expects a Buffer or Uint8Array');
  if (buf.length < 8) throw new FaceganError('ERR_TRUNCATED_FILE', `Truncated safetensors file: ${buf.length} bytes, shorter than the 8-byte header length`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  const headerLen = hi * 2 ** 32 + lo;
  if (headerLen > MAX_HEADER_BYTES) throw corrupt(`header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (headerLen > buf.length - 8) {
    throw new FaceganError('ERR_TRUNCATED_FILE', `Truncated safetensors file: the header claims ${headerLen} bytes but only ${buf.length - 8} follow`);
  }
  let header: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + headerLen));
    header = JSON.parse(text);
  } catch (err) {
    throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt safetensors file: the header is not valid UTF-8 JSON (${(err as Error).message})`, { cause: err });
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw corrupt('the header is not a JSON object');

  const dataStart = 8 + headerLen;
  const dataLen = buf.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }[] = [];

  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (info === null || typeof info !== 'object' || Array.isArray(info)) throw corrupt('__metadata__ is not an object');
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') throw corrupt(`__metadata__ value ${q(k)} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (info === null || typeof info !== 'object' || Array.isArray(info)) throw corrupt(`the entry for ${q(name)} is not an object`);
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (!isDtype(dtype)) throw corrupt(`tensor ${q(name)} has unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || shape.length > 32 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw corrupt(`tensor ${q(name)} has an invalid shape`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw corrupt(`tensor ${q(name)} has invalid data_offsets`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw corrupt(`tensor ${q(name)} has data_offsets [${begin}, ${end}] with end before begin`);
    if (end > dataLen) {
      throw new FaceganError('ERR_TRUNCATED_FILE', `Truncated safetensors file: tensor ${q(name)} ends at data byte ${end} but the file holds only ${dataLen} data bytes`);
    }
    // Element count, bailing out as soon as it cannot fit (no overflow past 2^53).
    let count = 1;
    for (const d of shape as number[]) {
      count *= d;
      if (count > dataLen) break;
    }
    if (count * DTYPE_SIZE[dtype] !== end - begin) {
      throw corrupt(`tensor ${q(name)} has shape [${(shape as number[]).join(', ')}] of ${dtype} but ${end - begin} data bytes`);
    }
    entries.push({ name, dtype, shape: (shape as number[]).slice(), begin, end });
  }

  // The data ranges must tile the data section exactly: no overlap, no holes, nothing after.
  const sorted = entries.map((e, i) => [e.begin, e.end, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let pos = 0;
  for (const [begin, end, i] of sorted) {
    if (begin < pos) throw corrupt(`tensor ${q(entries[i]!.name)} overlaps another tensor's data`);
    if (begin > pos) throw corrupt(`data bytes [${pos}, ${begin}) belong to no tensor`);
    pos = end;
  }
  if (pos !== dataLen) throw corrupt(`${dataLen - pos} trailing data bytes belong to no tensor`);

  const tensors = new Map<string, SafetensorsTensor>();
  for (const e of entries) {
    const size = DTYPE_SIZE[e.dtype];
    const count = (e.end - e.begin) / size;
    const absolute = buf.byteOffset + dataStart + e.begin;
    const Ctor = CTORS[e.dtype];
    let data: TensorData;
    if (absolute % size === 0) {
      data = new Ctor(buf.buffer, absolute, count);
    } else {
      data = new Ctor(count);
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength).set(buf.subarray(dataStart + e.begin, dataStart + e.end));
    }
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

/** Which typed array holds each dtype in memory. */
function expectedArray(dtype: SafetensorsDtype): string {
  return (CTORS[dtype] as unknown as { name: string }).name;
}

/**
 * Serialises tensors to a safetensors file. Tensors are laid out by decreasing element size (then
 * in the given order) and the header is padded with spaces, so every tensor is aligned for its
 * element type. F16/BF16 data must be given as `Uint16Array`s of raw bits (see
 * {@link float32ToFloat16}).
 */
export function writeSafetensors(
  tensors: Map<string, SafetensorsTensor> | Iterable<readonly [string, SafetensorsTensor]>,
  metadata?: Record<string, string>,
): Buffer {
  const list = [...tensors].map(([name, t], index) => ({ name, t, index }));
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new FaceganError('ERR_INVALID_OPTION', `Expected a string for metadata ${q(k)} but received ${typeof v}`);
      meta[k] = v;
    }
    header.__metadata__ = meta;
  }
  const seen = new Set<string>();
  for (const { name, t } of list) {
    if (typeof name !== 'string' || name.length === 0 || name === '__metadata__') throw new FaceganError('ERR_INVALID_OPTION', `Invalid tensor name ${q(String(name))}`);
    if (seen.has(name)) throw new FaceganError('ERR_INVALID_OPTION', `Duplicate tensor name ${q(name)}`);
    seen.add(name);
    if (!isDtype(t.dtype)) throw new FaceganError('ERR_INVALID_OPTION', `Tensor ${q(name)} has unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new FaceganError('ERR_INVALID_OPTION', `Tensor ${q(name)} has an invalid shape`);
    if (!(t.data instanceof (CTORS[t.dtype] as unknown as typeof Uint8Array))) {
      throw new FaceganError('ERR_INVALID_OPTION', `Tensor ${q(name)} of dtype ${t.dtype} must hold a ${expectedArray(t.dtype)}`);
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new FaceganError('ERR_INVALID_OPTION', `Tensor ${q(name)} has shape [${t.shape.join(', ')}] but ${t.data.length} elements`);
  }
  list.sort((a, b) => DTYPE_SIZE[b.t.dtype] - DTYPE_SIZE[a.t.dtype] || a.index - b.index);
  let offset = 0;
  for (const { name, t } of list) {
    const bytes = t.data.byteLength;
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  let jsonBytes = Buffer.byteLength(json, 'utf8');
  const pad = (8 - ((8 + jsonBytes) % 8)) % 8;
  json += ' '.repeat(pad);
  jsonBytes += pad;
  const out = Buffer.alloc(8 + jsonBytes + offset);
  out.writeBigUInt64LE(BigInt(jsonBytes), 0);
  out.write(json, 8, 'utf8');
  let pos = 8 + jsonBytes;
  for (const { t } of list) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Half-precision conversions.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits → number. */
export function halfBitsToNumber(h: number): number {
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

let halfTable: Float32Array | undefined;

/** Widens IEEE binary16 bits to float32 (exact). */
export function float16ToFloat32(src: Uint16Array): Float32Array {
  if (halfTable === undefined) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfBitsToNumber(h);
  }
  const table = halfTable;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
  return out;
}

/** Widens bfloat16 bits to float32 (exact). */
export function bfloat16ToFloat32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return out;
}

/** Rounds one float32 value to IEEE binary16 bits (round to nearest, ties to even). */
export function numberToHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → inf
  if (e <= 0) {
    // Subnormal half (or zero).
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rem > mid || (rem === mid && (half & 1)) ? 1 : 0));
  }
  const half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to inf).
  return sign | (half + (rem > 0x1000 || (rem === 0x1000 && (half & 1)) ? 1 : 0));
}

/** Rounds float32 values to IEEE binary16 bits (round to nearest, ties to even). */
export function float32ToFloat16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = numberToHalfBits(src[i]!);
  return out;
}
