/**
 * A tiny pickle WRITER for tests: builds hostile and synthetic pickles byte by byte, so the tests
 * need neither Python nor torch. Values:
 * null, boolean, number (integers as BININT or LONG1, others as BINFLOAT), bigint, string, Uint8Array,
 * arrays → lists, and the classes below.
 */

export class Tup { constructor(readonly items: PV[]) {} }
export class Dict { constructor(readonly entries: [PV, PV][]) {} }
export class Glob { constructor(readonly module: string, readonly name: string) {} }
export class Reduce { constructor(readonly fn: PV, readonly args: PV[]) {} }
export class NewObj { constructor(readonly cls: PV, readonly args: PV[]) {} }
export class Build { constructor(readonly obj: PV, readonly state: PV) {} }
export class Persid { constructor(readonly pid: PV) {} }
export class Float { constructor(readonly value: number) {} }
/** Raw opcode bytes spliced in as they are. */
export class Raw { constructor(readonly bytes: Uint8Array) {} }

export type PV = null | boolean | number | bigint | string | Uint8Array | PV[] | Tup | Dict | Glob | Reduce | NewObj | Build | Persid | Float | Raw;

export const tup = (...items: PV[]): Tup => new Tup(items);
export const dict = (obj: Record<string, PV>): Dict => new Dict(Object.entries(obj));
export const glob = (qualified: string): Glob => {
  const dot = qualified.lastIndexOf('.');
  return new Glob(qualified.slice(0, dot), qualified.slice(dot + 1));
};
export const call = (qualified: string, ...args: PV[]): Reduce => new Reduce(glob(qualified), args);
export const orderedDict = (obj: Record<string, PV>): Reduce => call('collections.OrderedDict', Object.entries(obj).map(([k, v]) => tup(k, v)));

class Out {
  private chunks: Buffer[] = [];
  byte(...b: number[]): void { this.chunks.push(Buffer.from(b)); }
  raw(b: Uint8Array): void { this.chunks.push(Buffer.from(b)); }
  u32(op: number, n: number): void { const b = Buffer.alloc(5); b[0] = op; b.writeUInt32LE(n, 1); this.chunks.push(b); }
  done(): Buffer { return Buffer.concat(this.chunks); }
}

function emit(o: Out, v: PV): void {
  if (v === null) return o.byte(0x4e);
  if (v === true) return o.byte(0x88);
  if (v === false) return o.byte(0x89);
  if (typeof v === 'number') {
    if (Number.isInteger(v)) {
      if (v >= 0 && v < 256) return o.byte(0x4b, v);
      if (v >= 0 && v < 65536) return o.byte(0x4d, v & 0xff, v >> 8);
      if (v >= -(2 ** 31) && v < 2 ** 31) { const b = Buffer.alloc(5); b[0] = 0x4a; b.writeInt32LE(v, 1); return o.raw(b); }
      return emit(o, BigInt(v));
    }
    const b = Buffer.alloc(9); b[0] = 0x47; b.writeDoubleBE(v, 1); return o.raw(b);
  }
  if (v instanceof Float) { const b = Buffer.alloc(9); b[0] = 0x47; b.writeDoubleBE(v.value, 1); return o.raw(b); }
  if (typeof v === 'bigint') {
    const bytes: number[] = [];
    let x = v;
    for (;;) {
      bytes.push(Number(BigInt.asUintN(8, x)));
      const next = x >> 8n;
      if ((next === 0n && !(bytes[bytes.length - 1]! & 0x80)) || (next === -1n && bytes[bytes.length - 1]! & 0x80)) break;
      x = next;
    }
    return o.byte(0x8a, bytes.length, ...bytes);
  }
  if (typeof v === 'string') { const b = Buffer.from(v, 'utf8'); o.u32(0x58, b.length); return o.raw(b); }
  if (v instanceof Uint8Array) { o.u32(0x42, v.length); return o.raw(v); }
  if (Array.isArray(v)) {
    o.byte(0x5d);
    if (v.length === 0) return;
    o.byte(0x28); for (const x of v) emit(o, x); return o.byte(0x65);
  }
  if (v instanceof Tup) { o.byte(0x28); for (const x of v.items) emit(o, x); return o.byte(0x74); }
  if (v instanceof Dict) {
    o.byte(0x7d);
    if (v.entries.length === 0) return;
    o.byte(0x28); for (const [k, x] of v.entries) { emit(o, k); emit(o, x); } return o.byte(0x75);
  }
  if (v instanceof Glob) { o.byte(0x63); o.raw(Buffer.from(`${v.module}\n${v.name}\n`, 'utf8')); return; }
  if (v instanceof Reduce) { emit(o, v.fn); emit(o, new Tup(v.args)); return o.byte(0x52); }
  if (v instanceof NewObj) { emit(o, v.cls); emit(o, new Tup(v.args)); return o.byte(0x81); }
  if (v instanceof Build) { emit(o, v.obj); emit(o, v.state); return o.byte(0x62); }
  if (v instanceof Persid) { emit(o, v.pid); return o.byte(0x51); }
  if (v instanceof Raw) return o.raw(v.bytes);
  throw new Error('pickle-writer: cannot emit value');
}

/** Pickles `v` (PROTO `protocol`, no memo), ending with STOP. */
export function dumps(v: PV, protocol = 3): Buffer {
  const o = new Out();
  o.byte(0x80, protocol);
  emit(o, v);
  o.byte(0x2e);
  return o.done();
}

// --- torch -----------------------------------------------------------------------------------

export interface StorageSpec {
  key: string;
  type?: string; // FloatStorage, HalfStorage, DoubleStorage, LongStorage, …
  numel: number;
  data: Uint8Array;
  /** The element count written before the data (default numel). */
  count?: bigint | number;
}

/** The persistent id of a storage, as torch.save writes it. */
export function storagePid(s: Pick<StorageSpec, 'key' | 'type' | 'numel'>): Tup {
  return tup('storage', glob(`torch.${s.type ?? 'FloatStorage'}`), s.key, 'cpu', s.numel, null);
}

/** A legacy torch.save stream of `obj` whose storages are `storages`. */
export function legacyTorchStream(obj: PV, storages: StorageSpec[], keys: string[] = storages.map((s) => s.key)): Buffer {
  const parts: Buffer[] = [
    dumps(0x1950a86a20f9469cfc6cn, 2),
    dumps(1001, 2),
    dumps(dict({ protocol_version: 1001, little_endian: true, type_sizes: dict({ short: 2, int: 4, long: 4 }) }), 2),
    dumps(obj, 2),
    dumps(keys, 2),
  ];
  for (const key of keys) {
    const s = storages.find((x) => x.key === key)!;
    const n = Buffer.alloc(8);
    n.writeBigUInt64LE(BigInt(s.count ?? s.numel));
    parts.push(n, Buffer.from(s.data));
  }
  return Buffer.concat(parts);
}

/** A float32 tensor pickled as StyleGAN2-ADA pickles do (own storage via _load_from_bytes). */
export function torchTensor(key: string, shape: number[], data: Float32Array, param = true): Reduce {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const storage = call('torch.storage._load_from_bytes', legacyTorchStream(new Persid(storagePid({ key, numel: data.length })), [{ key, numel: data.length, data: bytes }]));
  const stride: number[] = [];
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) { stride.unshift(s); s *= shape[d]!; }
  const t = call('torch._utils._rebuild_tensor_v2', storage, 0, tup(...shape), tup(...stride), false, call('collections.OrderedDict'));
  return param ? call('torch._utils._rebuild_parameter', t, true, call('collections.OrderedDict')) : t;
}

/** An object saved through torch_utils.persistence. */
export function persistent(className: string, state: Record<string, PV>): Reduce {
  return call('torch_utils.persistence._reconstruct_persistent_obj', dict({
    type: 'class', version: 6, module_src: '# not used', class_name: className, state: dict(state),
  }));
}

/** A numpy array (float32 little-endian, C order) as numpy pickles it. */
export function numpyArray(shape: number[], data: Float32Array): Build {
  const arr = call('numpy.core.multiarray._reconstruct', glob('numpy.ndarray'), tup(0), Buffer.from('b'));
  const dtype = new Build(call('numpy.dtype', 'f4', false, true), tup(3, '<', null, null, null, -1, -1, 0));
  return new Build(arr, tup(1, tup(...shape), dtype, false, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
}
