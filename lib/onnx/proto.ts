/**
 * The small subset of the protocol buffers wire format that ONNX models need, written for this
 * project (no protobuf library): varints, length-delimited fields (strings, bytes, nested
 * messages), 32-bit floats, and a reader for the same subset.
 *
 * Wire types: 0 varint, 1 64-bit, 2 length-delimited, 5 32-bit. A field's key is
 * `(field_number << 3) | wire_type`, itself a varint. Negative int64 values are written as
 * ten-byte two's-complement varints (int64, not zigzag sint64), as protobuf does.
 *
 * A {@link Message} keeps its bytes as a list of chunks and only its total length, so nesting a
 * 100 MB initializer in a tensor in a graph in a model never copies it: the chunks are joined once
 * by {@link Message.finish}.
 */

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

const textEncoder = new TextEncoder();

function varintBytes(value: number | bigint): Uint8Array {
  let v = BigInt.asUintN(64, BigInt(value));
  if (v < 0x80n) return Uint8Array.of(Number(v));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

function smallVarint(value: number): Uint8Array {
  // Fast path for non-negative integers below 2^31 (keys, lengths, small ints).
  if (value < 0x80) return Uint8Array.of(value);
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  out.push(value);
  return Uint8Array.from(out);
}

function intVarint(value: number | bigint): Uint8Array {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new RangeError(`protobuf: ${value} is not a safe integer`);
    if (value >= 0 && value < 2 ** 31) return smallVarint(value);
  }
  return varintBytes(value);
}

function key(field: number, wire: number): Uint8Array {
  return smallVarint((field << 3) | wire);
}

/** A message being written: append fields in order, nest with {@link Message.message}. */
export class Message {
  readonly chunks: Uint8Array[] = [];
  length = 0;

  #push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  /** An int32/int64/enum/bool field (varint). */
  int(field: number, value: number | bigint | boolean): this {
    this.#push(key(field, WIRE_VARINT));
    this.#push(intVarint(typeof value === 'boolean' ? (value ? 1 : 0) : value));
    return this;
  }

  /** Repeated int64 written one element per key (proto2's default, unpacked, encoding). */
  ints(field: number, values: Iterable<number | bigint>): this {
    for (const v of values) this.int(field, v);
    return this;
  }

  /** A float field (32-bit little-endian). */
  float(field: number, value: number): this {
    this.#push(key(field, WIRE_I32));
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.#push(b);
    return this;
  }

  /** Repeated float, unpacked. */
  floats(field: number, values: Iterable<number>): this {
    for (const v of values) this.float(field, v);
    return this;
  }

  /** A bytes field. The bytes are referenced, not copied, until {@link finish}. */
  bytes(field: number, value: Uint8Array): this {
    this.#push(key(field, WIRE_LEN));
    this.#push(smallVarint(value.length));
    if (value.length > 0) this.#push(value);
    return this;
  }

  /** A string field (UTF-8). */
  string(field: number, value: string): this {
    return this.bytes(field, textEncoder.encode(value));
  }

  /** A nested message field. */
  message(field: number, value: Message): this {
    this.#push(key(field, WIRE_LEN));
    this.#push(smallVarint(value.length));
    for (const c of value.chunks) this.chunks.push(c);
    this.length += value.length;
    return this;
  }

  /** The encoded message, in one buffer. */
  finish(): Uint8Array {
    if (this.length > 0x7fffffff) throw new RangeError(`protobuf: a ${this.length}-byte message exceeds the 2 GiB limit`);
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading.

/** One field as read: varints as bigint, length-delimited as a view into the buffer. */
export type Field =
  | { field: number; wire: 0; value: bigint }
  | { field: number; wire: 1; value: Uint8Array }
  | { field: number; wire: 2; value: Uint8Array }
  | { field: number; wire: 5; value: Uint8Array };

function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new RangeError('protobuf: truncated varint');
    const b = buf[pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [BigInt.asUintN(64, result), pos];
    shift += 7n;
  }
  throw new RangeError('protobuf: varint longer than 10 bytes');
}

/** Splits a message into its fields (in order). Throws RangeError on malformed input. */
export function readFields(buf: Uint8Array): Field[] {
  const fields: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [k, p] = readVarint(buf, pos);
    pos = p;
    const field = Number(k >> 3n);
    const wire = Number(k & 7n);
    if (field === 0) throw new RangeError('protobuf: field number 0');
    switch (wire) {
      case WIRE_VARINT: {
        const [v, q] = readVarint(buf, pos);
        pos = q;
        fields.push({ field, wire: 0, value: v });
        break;
      }
      case WIRE_I64:
      case WIRE_I32: {
        const n = wire === WIRE_I64 ? 8 : 4;
        if (pos + n > buf.length) throw new RangeError('protobuf: truncated fixed-width field');
        fields.push({ field, wire, value: buf.subarray(pos, pos + n) } as Field);
        pos += n;
        break;
      }
      case WIRE_LEN: {
        const [len, q] = readVarint(buf, pos);
        pos = q;
        if (len > BigInt(buf.length - pos)) throw new RangeError('protobuf: truncated length-delimited field');
        fields.push({ field, wire: 2, value: buf.subarray(pos, pos + Number(len)) });
        pos += Number(len);
        break;
      }
      default:
        throw new RangeError(`protobuf: unsupported wire type ${wire}`);
    }
  }
  return fields;
}

/** A varint field's value as a signed int64 (number when safe, else throws). */
export function toInt(value: bigint): number {
  const v = BigInt.asIntN(64, value);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new RangeError(`protobuf: ${v} is beyond the safe integer range`);
  return Number(v);
}

/** A length-delimited field as UTF-8 text. */
export function toText(value: Uint8Array): string {
  return new TextDecoder('utf-8', { fatal: true }).decode(value);
}

/** Repeated int64 field values, whether written packed (one length-delimited field) or not. */
export function repeatedInts(fields: Field[], field: number): number[] {
  const out: number[] = [];
  for (const f of fields) {
    if (f.field !== field) continue;
    if (f.wire === 0) out.push(toInt(f.value));
    else if (f.wire === 2) {
      let pos = 0;
      while (pos < f.value.length) {
        const [v, q] = readVarint(f.value, pos);
        pos = q;
        out.push(toInt(v));
      }
    } else throw new RangeError(`protobuf: field ${field} has wire type ${f.wire}, expected a varint`);
  }
  return out;
}

/** Repeated float field values, packed or not. */
export function repeatedFloats(fields: Field[], field: number): number[] {
  const out: number[] = [];
  for (const f of fields) {
    if (f.field !== field) continue;
    if (f.wire !== 5 && f.wire !== 2) throw new RangeError(`protobuf: field ${field} has wire type ${f.wire}, expected a float`);
    const dv = new DataView(f.value.buffer, f.value.byteOffset, f.value.byteLength);
    if (f.value.length % 4 !== 0) throw new RangeError(`protobuf: packed float field ${field} is ${f.value.length} bytes`);
    for (let i = 0; i < f.value.length; i += 4) out.push(dv.getFloat32(i, true));
  }
  return out;
}
