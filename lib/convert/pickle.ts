/**
 * A restricted reader of Python pickles (protocols 0–5) that never executes anything.
 *
 * Every `GLOBAL`/`STACK_GLOBAL`/`INST` is looked up in an explicit allow-list of
 * (module, name) pairs, each mapped to a TypeScript handler that builds plain data. Anything
 * else is refused with `ERR_FORBIDDEN_GLOBAL`. The reader is hardened against hostile input:
 * bounded memo, stack and MARK depth, declared lengths checked against the bytes that remain,
 * unknown opcodes rejected, and no recursion over the data it builds.
 *
 * Python values map to:
 * `None` → `null`, `bool` → `boolean`, `int` → `number` (or `bigint` beyond ±2^53), `float` →
 * `number`, `str` → `string`, `bytes` → `Uint8Array` (a view into the input: do not modify),
 * `bytearray` → `Uint8Array` (a copy), `list` → `PyValue[]`, `tuple` → {@link PyTuple},
 * `dict` → {@link PyDict}, `set`/`frozenset` → {@link PySet}, an allowed global →
 * {@link PyGlobal}, an instance of an allowed class → {@link PyObject} or what its handler built.
 */
import { FaceganError } from '../errors.js';
import { bfloat16ToFloat32, float16ToFloat32, halfBitsToNumber } from '../safetensors.js';

// ---------------------------------------------------------------------------------------------
// Value model.

/** What a handler builds. `pyBuild` receives the state of a `BUILD` opcode. */
export abstract class PyExtension {
  pyBuild(_state: PyValue): void {
    throw pickleCorrupt(`BUILD is not supported on ${this.constructor.name}`);
  }
}

export type PyValue =
  | null | boolean | number | bigint | string | Uint8Array
  | PyValue[] | PyTuple | PyDict | PySet | PyGlobal | PyExtension;

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
  get length(): number { return this.items.length; }
}

export class PySet {
  constructor(readonly items: PyValue[], readonly frozen: boolean) {}
}

/** A Python dict (also OrderedDict / EasyDict). Keys keep their Python equality (1 == 1.0 == True). */
export class PyDict {
  private readonly map = new Map<unknown, [PyValue, PyValue]>();
  /** State given by a BUILD on a dict subclass instance (its `__dict__`), if any. */
  state: PyValue | undefined;

  get size(): number { return this.map.size; }
  set(key: PyValue, value: PyValue): void { this.map.set(hashKey(key), [key, value]); }
  get(key: string | number): PyValue | undefined { return this.map.get(key)?.[1]; }
  has(key: string | number): boolean { return this.map.has(key); }
  *entries(): IterableIterator<[PyValue, PyValue]> { for (const e of this.map.values()) yield e; }
  *keys(): IterableIterator<PyValue> { for (const e of this.map.values()) yield e[0]; }
  *values(): IterableIterator<PyValue> { for (const e of this.map.values()) yield e[1]; }
}

/** A reference to an allowed global (a function or a class), as pushed by GLOBAL. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string, readonly handler: GlobalHandler) {}
  get qualifiedName(): string { return `${this.module}.${this.name}`; }
}

/** An instance of an allowed class without behaviour: its constructor args and BUILD state. */
export class PyObject extends PyExtension {
  state: PyValue | undefined;
  constructor(readonly module: string, readonly name: string, readonly args: PyValue[]) { super(); }
  override pyBuild(state: PyValue): void { this.state = state; }
}

const MAX_KEY_DEPTH = 64;
const MAX_KEY_NODES = 10_000;

function hashKey(key: PyValue): unknown {
  if (key === null || typeof key === 'string' || typeof key === 'number') return key;
  return hashComposite(key, 0, { nodes: 0 });
}

/** Python equality for keys: 1 == 1.0 == True; tuples by value. Bounded in depth and size (tuples may share parts). */
function hashComposite(key: PyValue, depth: number, budget: { nodes: number }): unknown {
  if (++budget.nodes > MAX_KEY_NODES) throw pickleCorrupt('a dict key is too large');
  if (key === null || typeof key === 'string' || typeof key === 'number') return key;
  if (typeof key === 'boolean') return key ? 1 : 0;
  if (typeof key === 'bigint') return Number.isSafeInteger(Number(key)) && BigInt(Number(key)) === key ? Number(key) : key;
  if (depth > MAX_KEY_DEPTH) throw pickleCorrupt('a dict key nests too deeply');
  if (key instanceof PyTuple) return `\u0000t(${key.items.map((k) => String(hashComposite(k, depth + 1, budget))).join('\u0000,')})`;
  if (key instanceof Uint8Array) return `\u0000b${Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1')}`;
  if (key instanceof PyGlobal) return `\u0000g${key.module}\u0000${key.name}`;
  if (key instanceof PySet && key.frozen) return key; // identity: good enough for data
  if (Array.isArray(key) || key instanceof PyDict || key instanceof PySet) throw pickleCorrupt('unhashable dict key (list, dict or set)');
  return key; // other objects hash by identity, as in Python
}

// ---------------------------------------------------------------------------------------------
// Allow-list.

/**
 * What an allowed global does. `call` implements REDUCE (`f(*args)`) and `INST`/`OBJ`; `newobj`
 * implements NEWOBJ / NEWOBJ_EX (`cls.__new__(cls, *args)`). A handler with neither is an inert
 * marker (e.g. a class passed as an argument, or a torch storage type).
 */
export interface GlobalHandler {
  call?(args: PyValue[]): PyValue;
  newobj?(args: PyValue[], kwargs: PyDict | null): PyValue;
}

/** module → name → handler. */
export type GlobalTable = ReadonlyMap<string, ReadonlyMap<string, GlobalHandler>>;

/** Builds a {@link GlobalTable} from `'module.name'`-keyed entries (the last dot separates). */
export function globalTable(...parts: Iterable<readonly [string, GlobalHandler]>[]): GlobalTable {
  const table = new Map<string, Map<string, GlobalHandler>>();
  for (const part of parts) {
    for (const [qualified, handler] of part) {
      const dot = qualified.lastIndexOf('.');
      const module = qualified.slice(0, dot);
      const name = qualified.slice(dot + 1);
      let names = table.get(module);
      if (names === undefined) table.set(module, (names = new Map()));
      names.set(name, handler);
    }
  }
  return table;
}

/** Lists a table's globals as `module.name` strings, sorted. */
export function listGlobals(table: GlobalTable): string[] {
  const out: string[] = [];
  for (const [module, names] of table) for (const name of names.keys()) out.push(`${module}.${name}`);
  return out.sort();
}

/** A class with no behaviour: NEWOBJ or a call builds a {@link PyObject}; BUILD stores the state. */
export function plainClass(module: string, name: string): GlobalHandler {
  return {
    call: (args) => new PyObject(module, name, args),
    newobj: (args) => new PyObject(module, name, args),
  };
}

/** A dict subclass (OrderedDict, EasyDict): builds a {@link PyDict}. */
function dictClass(): GlobalHandler {
  const build = (args: PyValue[]): PyDict => {
    const d = new PyDict();
    if (args.length > 1) throw pickleCorrupt('dict constructor takes at most one argument');
    if (args.length === 1) {
      const src = args[0]!;
      const items = src instanceof PyTuple ? src.items : Array.isArray(src) ? src : src instanceof PyDict ? null : undefined;
      if (src instanceof PyDict) for (const [k, v] of src.entries()) d.set(k, v);
      else if (items === undefined) throw pickleCorrupt('dict constructor argument is not a sequence of pairs');
      else if (items !== null) {
        for (const item of items) {
          const pair = item instanceof PyTuple ? item.items : Array.isArray(item) ? item : null;
          if (pair === null || pair.length !== 2) throw pickleCorrupt('dict constructor item is not a pair');
          d.set(pair[0]!, pair[1]!);
        }
      }
    }
    return d;
  };
  return { call: build, newobj: () => new PyDict() };
}

function setClass(frozen: boolean): GlobalHandler {
  const build = (args: PyValue[]): PySet => {
    if (args.length === 0) return new PySet([], frozen);
    const src = args[0]!;
    const items = src instanceof PyTuple ? src.items : Array.isArray(src) ? src : src instanceof PySet ? src.items : null;
    if (args.length !== 1 || items === null) throw pickleCorrupt('set constructor argument is not a sequence');
    return new PySet(items.slice(), frozen);
  };
  return { call: build, newobj: () => new PySet([], frozen) };
}

function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255) throw pickleCorrupt('a latin-1 string holds a character above U+00FF');
    out[i] = c;
  }
  return out;
}

const bytearrayClass: GlobalHandler = {
  call(args) {
    if (args.length === 0) return new Uint8Array(0);
    const [src, encoding] = args;
    if (src instanceof Uint8Array && args.length === 1) return new Uint8Array(src);
    if (typeof src === 'string' && typeof encoding === 'string') return encodeString(src, encoding);
    throw pickleCorrupt('unsupported bytearray constructor arguments');
  },
};

function encodeString(s: string, encoding: string): Uint8Array {
  const enc = encoding.toLowerCase().replace(/_/g, '-');
  if (enc === 'latin1' || enc === 'latin-1' || enc === 'iso-8859-1' || enc === 'iso8859-1') return latin1Bytes(s);
  if (enc === 'utf8' || enc === 'utf-8') return new Uint8Array(Buffer.from(s, 'utf8'));
  if (enc === 'ascii') {
    const out = latin1Bytes(s);
    if (out.some((b) => b > 127)) throw pickleCorrupt('an ascii string holds a non-ASCII character');
    return out;
  }
  throw pickleCorrupt(`unsupported encoding ${JSON.stringify(encoding.slice(0, 40))} in _codecs.encode`);
}

/** `_codecs.encode(str, encoding)`: how protocol-2 pickles written by Python 3 store `bytes`. */
const codecsEncode: GlobalHandler = {
  call(args) {
    const [s, encoding = 'utf-8'] = args;
    if (typeof s !== 'string' || typeof encoding !== 'string' || args.length > 3) throw pickleCorrupt('_codecs.encode expects (str, encoding)');
    return encodeString(s, encoding);
  },
};

// --- NumPy --------------------------------------------------------------------------------------

/** Numeric element kinds shared by NumPy arrays and torch storages. */
export type ElementKind = 'f2' | 'bf16' | 'f4' | 'f8' | 'i1' | 'i2' | 'i4' | 'i8' | 'u1' | 'u2' | 'u4' | 'u8' | 'b1';

export const ELEMENT_SIZE: Readonly<Record<ElementKind, number>> = Object.freeze({
  f2: 2, bf16: 2, f4: 4, f8: 8, i1: 1, i2: 2, i4: 4, i8: 8, u1: 1, u2: 2, u4: 4, u8: 8, b1: 1,
});

/**
 * Decodes `count` elements of `kind` from `bytes` (starting at byte 0) into a new Float32Array
 * (rounding float64 and 64-bit integers to the nearest float32).
 */
export function decodeToFloat32(bytes: Uint8Array, kind: ElementKind, count: number, littleEndian = true): Float32Array {
  const size = ELEMENT_SIZE[kind];
  if (bytes.length < count * size) throw pickleCorrupt(`need ${count * size} data bytes, have ${bytes.length}`);
  const src = bytes.subarray(0, count * size);
  if (!littleEndian && size > 1) {
    const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) {
      const o = i * size;
      switch (kind) {
        case 'f2': out[i] = halfBitsToNumber(dv.getUint16(o, false)); break;
        case 'bf16': out[i] = new Float32Array(new Uint32Array([dv.getUint16(o, false) << 16]).buffer)[0]!; break;
        case 'f4': out[i] = dv.getFloat32(o, false); break;
        case 'f8': out[i] = dv.getFloat64(o, false); break;
        case 'i2': out[i] = dv.getInt16(o, false); break;
        case 'i4': out[i] = dv.getInt32(o, false); break;
        case 'i8': out[i] = Number(dv.getBigInt64(o, false)); break;
        case 'u2': out[i] = dv.getUint16(o, false); break;
        case 'u4': out[i] = dv.getUint32(o, false); break;
        case 'u8': out[i] = Number(dv.getBigUint64(o, false)); break;
      }
    }
    return out;
  }
  // Aligned typed-array views need byteOffset % size === 0: copy the bytes when they are not.
  const aligned = src.byteOffset % size === 0 ? src : new Uint8Array(src);
  const buf = aligned.buffer;
  const off = aligned.byteOffset;
  switch (kind) {
    case 'f4': return new Float32Array(buf, off, count).slice();
    case 'f8': return Float32Array.from(new Float64Array(buf, off, count));
    case 'f2': return float16ToFloat32(new Uint16Array(buf, off, count));
    case 'bf16': return bfloat16ToFloat32(new Uint16Array(buf, off, count));
    case 'i1': return Float32Array.from(new Int8Array(buf, off, count));
    case 'u1': return Float32Array.from(new Uint8Array(buf, off, count));
    case 'b1': return Float32Array.from(new Uint8Array(buf, off, count), (v) => (v ? 1 : 0));
    case 'i2': return Float32Array.from(new Int16Array(buf, off, count));
    case 'u2': return Float32Array.from(new Uint16Array(buf, off, count));
    case 'i4': return Float32Array.from(new Int32Array(buf, off, count));
    case 'u4': return Float32Array.from(new Uint32Array(buf, off, count));
    case 'i8': { const a = new BigInt64Array(buf, off, count); const out = new Float32Array(count); for (let i = 0; i < count; i++) out[i] = Number(a[i]!); return out; }
    case 'u8': { const a = new BigUint64Array(buf, off, count); const out = new Float32Array(count); for (let i = 0; i < count; i++) out[i] = Number(a[i]!); return out; }
  }
}

const NUMPY_KINDS: Record<string, ElementKind> = {
  f2: 'f2', f4: 'f4', f8: 'f8', i1: 'i1', i2: 'i2', i4: 'i4', i8: 'i8', u1: 'u1', u2: 'u2', u4: 'u4', u8: 'u8', b1: 'b1',
};

/** A `numpy.dtype`. Only plain numeric dtypes can be decoded. */
export class NpDtype extends PyExtension {
  byteorder = '=';
  structured = false;
  constructor(readonly code: string) { super(); }
  get kind(): ElementKind | undefined { return NUMPY_KINDS[this.code]; }
  get littleEndian(): boolean { return this.byteorder !== '>'; }
  /** The element kind, or a corrupt-file error naming the dtype. */
  requireKind(): ElementKind {
    const k = this.kind;
    if (k === undefined || this.structured) throw pickleCorrupt(`unsupported numpy dtype ${JSON.stringify(this.code)}`);
    return k;
  }
  override pyBuild(state: PyValue): void {
    // (version, byteorder, subarray, names, fields, elsize, alignment, flags)
    if (!(state instanceof PyTuple) || state.length < 2 || typeof state.items[1] !== 'string') throw pickleCorrupt('bad numpy dtype state');
    const bo = state.items[1];
    if (bo !== '<' && bo !== '>' && bo !== '|' && bo !== '=') throw pickleCorrupt('bad numpy dtype byte order');
    this.byteorder = bo;
    if (state.items.length > 3 && state.items[3] !== null) this.structured = true;
    if (state.items.length > 2 && state.items[2] !== null) this.structured = true;
  }
}

const numpyDtype: GlobalHandler = {
  call(args) {
    const code = args[0];
    if (typeof code !== 'string' || code.length > 16) throw pickleCorrupt('numpy.dtype expects a type code');
    return new NpDtype(code);
  },
};

/** A `numpy.ndarray` (numeric, C or Fortran order). */
export class NdArray extends PyExtension {
  shape: number[] = [];
  dtype: NpDtype | null = null;
  fortran = false;
  data: Uint8Array | null = null;

  override pyBuild(state: PyValue): void {
    // (version, shape, dtype, is_fortran, rawdata) or, from old numpy, without the version.
    if (!(state instanceof PyTuple) || (state.length !== 5 && state.length !== 4)) throw pickleCorrupt('bad numpy array state');
    const [shape, dtype, fortran, raw] = state.length === 5 ? state.items.slice(1) : state.items;
    this.init(shape, dtype, fortran === true || fortran === 1, raw);
  }

  /** Sets shape, dtype, order and data, checking that they agree. */
  init(shape: PyValue | undefined, dtype: PyValue | undefined, fortran: boolean, raw: PyValue | undefined): this {
    if (!(shape instanceof PyTuple) || shape.length > 32 || !shape.items.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) throw pickleCorrupt('bad numpy array shape');
    if (!(dtype instanceof NpDtype)) throw pickleCorrupt('bad numpy array dtype');
    const kind = dtype.requireKind();
    let bytes: Uint8Array;
    if (raw instanceof Uint8Array) bytes = raw;
    else if (typeof raw === 'string') bytes = latin1Bytes(raw);
    else throw pickleCorrupt('numpy object arrays are not supported');
    let count = 1;
    for (const d of shape.items as number[]) count *= d;
    if (count * ELEMENT_SIZE[kind] !== bytes.length) throw pickleCorrupt(`numpy array of shape [${shape.items.join(', ')}] ${dtype.code} has ${bytes.length} data bytes`);
    this.shape = (shape.items as number[]).slice();
    this.dtype = dtype;
    this.fortran = fortran;
    this.data = bytes;
    return this;
  }

  get size(): number { return this.shape.reduce((a, b) => a * b, 1); }

  /** The elements in C order as float32. */
  toFloat32(): Float32Array {
    if (this.data === null || this.dtype === null) throw pickleCorrupt('numpy array without data');
    const flat = decodeToFloat32(this.data, this.dtype.requireKind(), this.size, this.dtype.littleEndian);
    if (!this.fortran || this.shape.length < 2) return flat;
    // Fortran order: flat[i0 + n0*(i1 + n1*(...))]; gather into C order.
    const n = this.shape.length;
    const fstride = new Array<number>(n);
    for (let d = 0, s = 1; d < n; d++) { fstride[d] = s; s *= this.shape[d]!; }
    return gather(flat, this.shape, fstride, 0);
  }
}

/** Copies a strided view of `src` into a new contiguous C-order Float32Array. */
export function gather(src: Float32Array, shape: readonly number[], stride: readonly number[], offset: number): Float32Array {
  const n = shape.length;
  const count = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(count);
  if (count === 0) return out;
  if (n === 0) { out[0] = src[offset]!; return out; }
  const idx = new Array<number>(n).fill(0);
  const last = n - 1;
  const lastLen = shape[last]!;
  const lastStride = stride[last]!;
  let base = offset;
  for (let o = 0; o < count; o += lastLen) {
    for (let j = 0, p = base; j < lastLen; j++, p += lastStride) out[o + j] = src[p]!;
    // Advance the odometer over the leading dimensions.
    for (let d = last - 1; d >= 0; d--) {
      idx[d]!++;
      base += stride[d]!;
      if (idx[d]! < shape[d]!) break;
      base -= stride[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

const numpyReconstruct: GlobalHandler = {
  call(args) {
    const cls = args[0];
    if (!(cls instanceof PyGlobal) || cls.name !== 'ndarray') throw pickleCorrupt('numpy _reconstruct of a class other than numpy.ndarray');
    return new NdArray();
  },
};

/** `numpy.core.multiarray.scalar(dtype, bytes)` → a JS number (or boolean / bigint). */
const numpyScalar: GlobalHandler = {
  call(args) {
    const [dtype, raw] = args;
    if (!(dtype instanceof NpDtype) || args.length !== 2) throw pickleCorrupt('numpy scalar expects (dtype, bytes)');
    const kind = dtype.requireKind();
    const bytes = raw instanceof Uint8Array ? raw : typeof raw === 'string' ? latin1Bytes(raw) : null;
    if (bytes === null || bytes.length !== ELEMENT_SIZE[kind]) throw pickleCorrupt('numpy scalar data has the wrong size');
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const le = dtype.littleEndian;
    switch (kind) {
      case 'f2': return halfBitsToNumber(dv.getUint16(0, le));
      case 'bf16': return decodeToFloat32(bytes, 'bf16', 1, le)[0]!;
      case 'f4': return dv.getFloat32(0, le);
      case 'f8': return dv.getFloat64(0, le);
      case 'i1': return dv.getInt8(0);
      case 'u1': return dv.getUint8(0);
      case 'b1': return dv.getUint8(0) !== 0;
      case 'i2': return dv.getInt16(0, le);
      case 'u2': return dv.getUint16(0, le);
      case 'i4': return dv.getInt32(0, le);
      case 'u4': return dv.getUint32(0, le);
      case 'i8': return normInt(dv.getBigInt64(0, le));
      case 'u8': return normInt(dv.getBigUint64(0, le));
    }
  },
};

function normInt(v: bigint): number | bigint {
  return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
}

const ndarrayClass: GlobalHandler = {}; // only ever an argument of _reconstruct

/** `numpy.core.numeric._frombuffer(buf, dtype, shape, order)`: arrays pickled with protocol 5. */
const numpyFrombuffer: GlobalHandler = {
  call(args) {
    const [buf, dtype, shape, order] = args;
    if (args.length !== 4 || (order !== 'C' && order !== 'F')) throw pickleCorrupt('numpy _frombuffer expects (buffer, dtype, shape, order)');
    return new NdArray().init(shape, dtype, order === 'F', buf);
  },
};

/**
 * The data-only globals every network pickle may use: containers, `bytes` encodings and NumPy
 * arrays/scalars/dtypes. (Torch and StyleGAN-specific entries live next to their handlers.)
 */
export const BASE_GLOBALS: ReadonlyArray<readonly [string, GlobalHandler]> = [
  ['collections.OrderedDict', dictClass()],
  ['builtins.set', setClass(false)],
  ['builtins.frozenset', setClass(true)],
  ['builtins.bytearray', bytearrayClass],
  ['__builtin__.set', setClass(false)],
  ['__builtin__.frozenset', setClass(true)],
  ['__builtin__.bytearray', bytearrayClass],
  ['_codecs.encode', codecsEncode],
  ['numpy.dtype', numpyDtype],
  ['numpy.ndarray', ndarrayClass],
  ['numpy.core.multiarray._reconstruct', numpyReconstruct],
  ['numpy.core.multiarray.scalar', numpyScalar],
  ['numpy._core.multiarray._reconstruct', numpyReconstruct],
  ['numpy._core.multiarray.scalar', numpyScalar],
  ['numpy.core.numeric._frombuffer', numpyFrombuffer],
  ['numpy._core.numeric._frombuffer', numpyFrombuffer],
  ['dnnlib.util.EasyDict', dictClass()],
];

// ---------------------------------------------------------------------------------------------
// The unpickler.

export interface UnpickleOptions {
  globals: GlobalTable;
  /** Resolves PERSID / BINPERSID. Without it, a persistent id is a corrupt-file error. */
  persistentLoad?: (pid: PyValue) => PyValue;
  /** Byte offset to start at (default 0). */
  start?: number;
  /** Limits (defaults are generous for any real checkpoint). */
  maxMemo?: number;
  maxStack?: number;
  maxMarkDepth?: number;
  /** What is being read, for error messages (default 'pickle'). */
  what?: string;
}

export interface UnpickleResult {
  value: PyValue;
  /** Offset just past the STOP opcode. */
  end: number;
}

const DEFAULT_MAX_MEMO = 1 << 22;
const DEFAULT_MAX_STACK = 1 << 22;
const DEFAULT_MAX_MARK_DEPTH = 10_000;
const MAX_LONG_BYTES = 1024;
const MAX_LINE = 1 << 20;

function pickleCorrupt(message: string): FaceganError {
  return new FaceganError('ERR_CORRUPT_FILE', `Corrupt pickle: ${message}`);
}

function printable(s: string): string {
  return JSON.stringify(s.length > 100 ? `${s.slice(0, 97)}...` : s);
}

/** Parses one pickle from `data` (starting at `options.start`), executing nothing. */
export function unpickle(data: Uint8Array, options: UnpickleOptions): UnpickleResult {
  return new Unpickler(data, options).load();
}

class Unpickler {
  private readonly buf: Buffer;
  private readonly dv: DataView;
  private readonly len: number;
  private pos: number;
  private stack: PyValue[] = [];
  private readonly metastack: PyValue[][] = [];
  private readonly memo = new Map<number, PyValue>();
  private buried = 0; // items in the stacks under MARKs
  private stackLimit: number;
  private readonly maxStack: number;
  private readonly maxMemo: number;
  private readonly maxMarkDepth: number;
  private readonly what: string;

  constructor(data: Uint8Array, private readonly options: UnpickleOptions) {
    this.buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.len = data.length;
    this.pos = options.start ?? 0;
    this.maxStack = options.maxStack ?? DEFAULT_MAX_STACK;
    this.maxMemo = options.maxMemo ?? DEFAULT_MAX_MEMO;
    this.maxMarkDepth = options.maxMarkDepth ?? DEFAULT_MAX_MARK_DEPTH;
    this.stackLimit = this.maxStack;
    this.what = options.what ?? 'pickle';
  }

  private corrupt(message: string, at = this.pos): FaceganError {
    return new FaceganError('ERR_CORRUPT_FILE', `Corrupt ${this.what}: ${message} (at byte ${at})`);
  }

  private truncated(need: number): FaceganError {
    return new FaceganError('ERR_TRUNCATED_FILE', `Truncated ${this.what}: needs ${need} more bytes at byte ${this.pos} but only ${this.len - this.pos} remain`);
  }

  private need(n: number): void {
    if (n > this.len - this.pos) throw this.truncated(n);
  }

  private u8(): number { this.need(1); return this.buf[this.pos++]!; }
  private u16(): number { this.need(2); const v = this.dv.getUint16(this.pos, true); this.pos += 2; return v; }
  private i32(): number { this.need(4); const v = this.dv.getInt32(this.pos, true); this.pos += 4; return v; }
  private u32(): number { this.need(4); const v = this.dv.getUint32(this.pos, true); this.pos += 4; return v; }
  /** A u64 length; anything that cannot possibly be present counts as truncation. */
  private u64len(): number {
    this.need(8);
    const lo = this.dv.getUint32(this.pos, true);
    const hi = this.dv.getUint32(this.pos + 4, true);
    this.pos += 8;
    if (hi >= 0x200000) throw this.truncated(Number.MAX_SAFE_INTEGER);
    return hi * 2 ** 32 + lo;
  }

  private bytes(n: number): Uint8Array {
    this.need(n);
    // A plain Uint8Array view (not a Buffer, whose slice() would not copy).
    const out = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.pos, n);
    this.pos += n;
    return out;
  }

  private utf8(n: number): string {
    this.need(n);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  private latin1(n: number): string {
    this.need(n);
    const s = this.buf.toString('latin1', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  /** A protocol-0 text line without its newline. */
  private line(): string {
    const limit = Math.min(this.len, this.pos + MAX_LINE);
    const rel = this.buf.subarray(this.pos, limit).indexOf(10);
    if (rel < 0) {
      if (limit === this.len) throw this.truncated(this.len - this.pos + 1);
      throw this.corrupt('text line too long');
    }
    const s = this.buf.toString('latin1', this.pos, this.pos + rel);
    this.pos += rel + 1;
    return s;
  }

  private push(v: PyValue): void {
    if (this.stack.length >= this.stackLimit) throw this.corrupt(`stack exceeds ${this.maxStack} items`);
    this.stack.push(v);
  }

  private pop(): PyValue {
    if (this.stack.length === 0) throw this.corrupt('stack underflow');
    return this.stack.pop()!;
  }

  private top(): PyValue {
    if (this.stack.length === 0) throw this.corrupt('stack underflow');
    return this.stack[this.stack.length - 1]!;
  }

  private mark(): void {
    if (this.metastack.length >= this.maxMarkDepth) throw this.corrupt(`MARK nesting exceeds ${this.maxMarkDepth}`);
    this.metastack.push(this.stack);
    this.buried += this.stack.length;
    this.stackLimit = this.maxStack - this.buried;
    this.stack = [];
  }

  private popMark(): PyValue[] {
    const items = this.stack;
    const prev = this.metastack.pop();
    if (prev === undefined) throw this.corrupt('no MARK to pop to');
    this.stack = prev;
    this.buried -= prev.length;
    this.stackLimit = this.maxStack - this.buried;
    return items;
  }

  private memoPut(index: number, v: PyValue): void {
    if (!this.memo.has(index) && this.memo.size >= this.maxMemo) throw this.corrupt(`memo exceeds ${this.maxMemo} entries`);
    this.memo.set(index, v);
  }

  private memoGet(index: number): PyValue {
    const v = this.memo.get(index);
    if (v === undefined) throw this.corrupt(`memo key ${index} is not defined`);
    return v;
  }

  private resolveGlobal(module: string, name: string): PyGlobal {
    const handler = this.options.globals.get(module)?.get(name);
    if (handler === undefined) {
      throw new FaceganError(
        'ERR_FORBIDDEN_GLOBAL',
        `The ${this.what} references the Python global ${printable(module)}.${printable(name)}, which is not on the allow-list of data-only constructors; loading it could execute code, so it is refused`,
      );
    }
    return new PyGlobal(module, name, handler);
  }

  private callable(f: PyValue, opname: string): (args: PyValue[]) => PyValue {
    if (!(f instanceof PyGlobal)) throw this.corrupt(`${opname} of something that is not an allowed global`);
    const call = f.handler.call;
    if (call === undefined) throw this.corrupt(`${opname}: ${f.qualifiedName} cannot be called`);
    return (args) => call.call(f.handler, args);
  }

  private newobj(cls: PyValue, args: PyValue, kwargs: PyDict | null): PyValue {
    if (!(cls instanceof PyGlobal)) throw this.corrupt('NEWOBJ of something that is not an allowed class');
    if (!(args instanceof PyTuple)) throw this.corrupt('NEWOBJ arguments are not a tuple');
    const make = cls.handler.newobj;
    if (make === undefined) throw this.corrupt(`NEWOBJ: ${cls.qualifiedName} is not a class`);
    return make.call(cls.handler, args.items, kwargs);
  }

  private decodeLong(n: number): number | bigint {
    if (n > MAX_LONG_BYTES) throw this.corrupt(`integer of ${n} bytes is too large`);
    const b = this.bytes(n);
    if (n === 0) return 0;
    if (n <= 6) {
      let v = 0;
      for (let i = n - 1; i >= 0; i--) v = v * 256 + b[i]!;
      if (b[n - 1]! & 0x80) v -= 2 ** (8 * n);
      return v;
    }
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return normInt(v);
  }

  private parseIntText(s: string, allowL: boolean): number | bigint {
    let t = s.trim();
    if (allowL && t.endsWith('L')) t = t.slice(0, -1);
    if (!/^[+-]?\d{1,400}$/.test(t)) throw this.corrupt('bad integer literal');
    return normInt(BigInt(t));
  }

  private setItems(dict: PyValue, items: PyValue[]): void {
    if (!(dict instanceof PyDict)) throw this.corrupt('SETITEM(S) on something that is not a dict');
    if (items.length % 2 !== 0) throw this.corrupt('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) dict.set(items[i]!, items[i + 1]!);
  }

  private appendAll(list: PyValue, items: PyValue[]): void {
    if (!Array.isArray(list)) throw this.corrupt('APPEND(S) on something that is not a list');
    for (let i = 0; i < items.length; i++) list.push(items[i]!);
  }

  private build(state: PyValue): void {
    const inst = this.top();
    if (inst instanceof PyExtension) inst.pyBuild(state);
    else if (inst instanceof PyDict) inst.state = state;
    else throw this.corrupt('BUILD on a value that has no state');
  }

  private persistent(pid: PyValue): PyValue {
    const load = this.options.persistentLoad;
    if (load === undefined) throw this.corrupt('a persistent id appears but this stream has no persistent storage');
    return load(pid);
  }

  load(): UnpickleResult {
    const buf = this.buf;
    for (;;) {
      if (this.pos >= this.len) throw new FaceganError('ERR_TRUNCATED_FILE', `Truncated ${this.what}: it ends at byte ${this.len} without a STOP opcode`);
      const at = this.pos;
      const op = buf[this.pos++]!;
      switch (op) {
        case 0x80: { // PROTO
          const p = this.u8();
          if (p > 5) throw this.corrupt(`unsupported pickle protocol ${p}`, at);
          break;
        }
        case 0x95: { // FRAME
          const n = this.u64len();
          if (n > this.len - this.pos) throw this.truncated(n);
          break;
        }
        case 0x2e: { // STOP
          const value = this.pop();
          return { value, end: this.pos };
        }
        // --- constants and numbers
        case 0x4e: this.push(null); break; // NONE
        case 0x88: this.push(true); break; // NEWTRUE
        case 0x89: this.push(false); break; // NEWFALSE
        case 0x4a: this.push(this.i32()); break; // BININT
        case 0x4b: this.push(this.u8()); break; // BININT1
        case 0x4d: this.push(this.u16()); break; // BININT2
        case 0x8a: this.push(this.decodeLong(this.u8())); break; // LONG1
        case 0x8b: { // LONG4
          const n = this.i32();
          if (n < 0) throw this.corrupt('negative LONG4 length', at);
          this.push(this.decodeLong(n));
          break;
        }
        case 0x47: { // BINFLOAT
          this.need(8);
          this.push(this.dv.getFloat64(this.pos, false));
          this.pos += 8;
          break;
        }
        case 0x49: { // INT (text); "00"/"01" are False/True
          const s = this.line();
          if (s === '00') this.push(false);
          else if (s === '01') this.push(true);
          else this.push(this.parseIntText(s, false));
          break;
        }
        case 0x4c: this.push(this.parseIntText(this.line(), true)); break; // LONG (text)
        case 0x46: { // FLOAT (text)
          const s = this.line().trim();
          const v = /^[+-]?inf$/i.test(s) ? (s.startsWith('-') ? -Infinity : Infinity) : /^[+-]?nan$/i.test(s) ? NaN : Number(s);
          if (Number.isNaN(v) && !/nan/i.test(s)) throw this.corrupt('bad float literal', at);
          this.push(v);
          break;
        }
        // --- strings and bytes
        case 0x58: this.push(this.utf8(this.u32())); break; // BINUNICODE
        case 0x8c: this.push(this.utf8(this.u8())); break; // SHORT_BINUNICODE
        case 0x8d: this.push(this.utf8(this.u64len())); break; // BINUNICODE8
        case 0x56: this.push(decodeRawUnicodeEscape(this.line())); break; // UNICODE (text)
        case 0x42: this.push(this.bytes(this.u32())); break; // BINBYTES
        case 0x43: this.push(this.bytes(this.u8())); break; // SHORT_BINBYTES
        case 0x8e: this.push(this.bytes(this.u64len())); break; // BINBYTES8
        case 0x96: this.push(new Uint8Array(this.bytes(this.u64len()))); break; // BYTEARRAY8
        case 0x54: { // BINSTRING (py2 str, decoded as latin-1)
          const n = this.i32();
          if (n < 0) throw this.corrupt('negative BINSTRING length', at);
          this.push(this.latin1(n));
          break;
        }
        case 0x55: this.push(this.latin1(this.u8())); break; // SHORT_BINSTRING
        case 0x53: this.push(decodeStringLiteral(this.line(), () => this.corrupt('bad STRING literal', at))); break; // STRING (text)
        case 0x97: throw this.corrupt('out-of-band buffers (NEXT_BUFFER) are not supported', at);
        case 0x98: this.top(); break; // READONLY_BUFFER: no-op on our values
        // --- containers
        case 0x28: this.mark(); break; // MARK
        case 0x29: this.push(new PyTuple([])); break; // EMPTY_TUPLE
        case 0x5d: this.push([]); break; // EMPTY_LIST
        case 0x7d: this.push(new PyDict()); break; // EMPTY_DICT
        case 0x8f: this.push(new PySet([], false)); break; // EMPTY_SET
        case 0x85: this.push(new PyTuple([this.pop()])); break; // TUPLE1
        case 0x86: { const b = this.pop(); const a = this.pop(); this.push(new PyTuple([a, b])); break; } // TUPLE2
        case 0x87: { const c = this.pop(); const b = this.pop(); const a = this.pop(); this.push(new PyTuple([a, b, c])); break; } // TUPLE3
        case 0x74: { const items = this.popMark(); this.push(new PyTuple(items)); break; } // TUPLE
        case 0x6c: { const items = this.popMark(); this.push(items); break; } // LIST
        case 0x64: { // DICT
          const items = this.popMark();
          const d = new PyDict();
          this.setItems(d, items);
          this.push(d);
          break;
        }
        case 0x91: { const items = this.popMark(); this.push(new PySet(items, true)); break; } // FROZENSET
        case 0x61: { const v = this.pop(); this.appendAll(this.top(), [v]); break; } // APPEND
        case 0x65: { const items = this.popMark(); this.appendAll(this.top(), items); break; } // APPENDS
        case 0x73: { const v = this.pop(); const k = this.pop(); this.setItems(this.top(), [k, v]); break; } // SETITEM
        case 0x75: { const items = this.popMark(); this.setItems(this.top(), items); break; } // SETITEMS
        case 0x90: { // ADDITEMS
          const items = this.popMark();
          const s = this.top();
          if (!(s instanceof PySet) || s.frozen) throw this.corrupt('ADDITEMS on something that is not a set', at);
          for (let i = 0; i < items.length; i++) s.items.push(items[i]!);
          break;
        }
        // --- stack manipulation
        case 0x30: if (this.stack.length > 0) this.stack.pop(); else this.popMark(); break; // POP
        case 0x31: this.popMark(); break; // POP_MARK
        case 0x32: this.push(this.top()); break; // DUP
        // --- memo
        case 0x70: this.memoPut(Number(this.parseIntText(this.line(), false)), this.top()); break; // PUT
        case 0x71: this.memoPut(this.u8(), this.top()); break; // BINPUT
        case 0x72: this.memoPut(this.u32(), this.top()); break; // LONG_BINPUT
        case 0x94: this.memoPut(this.memo.size, this.top()); break; // MEMOIZE
        case 0x67: this.push(this.memoGet(Number(this.parseIntText(this.line(), false)))); break; // GET
        case 0x68: this.push(this.memoGet(this.u8())); break; // BINGET
        case 0x6a: this.push(this.memoGet(this.u32())); break; // LONG_BINGET
        // --- globals and object construction
        case 0x63: { // GLOBAL
          const module = this.line();
          const name = this.line();
          this.push(this.resolveGlobal(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') throw this.corrupt('STACK_GLOBAL needs two strings', at);
          this.push(this.resolveGlobal(module, name));
          break;
        }
        case 0x82: case 0x83: case 0x84: { // EXT1, EXT2, EXT4
          const code = op === 0x82 ? this.u8() : op === 0x83 ? this.u16() : this.i32();
          throw new FaceganError('ERR_FORBIDDEN_GLOBAL', `The ${this.what} references extension code ${code} of the copyreg registry, which is not on the allow-list`);
        }
        case 0x52: { // REDUCE
          const args = this.pop();
          const f = this.pop();
          const call = this.callable(f, 'REDUCE');
          if (!(args instanceof PyTuple)) throw this.corrupt('REDUCE arguments are not a tuple', at);
          this.push(call(args.items));
          break;
        }
        case 0x81: { const args = this.pop(); const cls = this.pop(); this.push(this.newobj(cls, args, null)); break; } // NEWOBJ
        case 0x92: { // NEWOBJ_EX
          const kwargs = this.pop();
          const args = this.pop();
          const cls = this.pop();
          if (!(kwargs instanceof PyDict)) throw this.corrupt('NEWOBJ_EX keyword arguments are not a dict', at);
          this.push(this.newobj(cls, args, kwargs));
          break;
        }
        case 0x69: { // INST
          const module = this.line();
          const name = this.line();
          const g = this.resolveGlobal(module, name);
          const args = this.popMark();
          this.push(this.callable(g, 'INST')(args));
          break;
        }
        case 0x6f: { // OBJ
          const items = this.popMark();
          if (items.length === 0) throw this.corrupt('OBJ without a class', at);
          this.push(this.callable(items[0]!, 'OBJ')(items.slice(1)));
          break;
        }
        case 0x62: this.build(this.pop()); break; // BUILD
        case 0x50: this.push(this.persistent(this.line())); break; // PERSID
        case 0x51: this.push(this.persistent(this.pop())); break; // BINPERSID
        default:
          throw this.corrupt(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`, at);
      }
    }
  }
}

/** Python's raw-unicode-escape decoding (protocol-0 UNICODE): \uXXXX and \UXXXXXXXX escapes. */
function decodeRawUnicodeEscape(s: string): string {
  if (!s.includes('\\')) return s;
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a: string | undefined, b: string | undefined) => {
    const cp = parseInt((a ?? b)!, 16);
    if (cp > 0x10ffff) throw pickleCorrupt('bad \\U escape');
    return String.fromCodePoint(cp);
  });
}

/** A protocol-0 STRING literal (Python repr of a py2 str), decoded as latin-1 text. */
function decodeStringLiteral(line: string, bad: () => FaceganError): string {
  const s = line.trimEnd();
  if (s.length < 2 || (s[0] !== "'" && s[0] !== '"') || s[s.length - 1] !== s[0]) throw bad();
  const body = s.slice(1, -1);
  if (!body.includes('\\')) return body;
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') { out += c; continue; }
    const e = body[++i];
    switch (e) {
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'a': out += '\x07'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'v': out += '\v'; break;
      case '\\': case "'": case '"': out += e; break;
      case '\n': break;
      case 'x': {
        const h = body.slice(i + 1, i + 3);
        if (!/^[0-9a-fA-F]{2}$/.test(h)) throw bad();
        out += String.fromCharCode(parseInt(h, 16));
        i += 2;
        break;
      }
      default: {
        const m = /^[0-7]{1,3}/.exec(body.slice(i, i + 3));
        if (m === null) { out += `\\${e ?? ''}`; break; }
        out += String.fromCharCode(parseInt(m[0], 8) & 0xff);
        i += m[0].length - 1;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Small accessors for consumers of the value model.

/** A short description of a value's type, for error messages. */
export function pyTypeName(v: PyValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'None';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'string') return 'str';
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return 'list';
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof PyDict) return 'dict';
  if (v instanceof PySet) return v.frozen ? 'frozenset' : 'set';
  if (v instanceof PyGlobal) return v.qualifiedName;
  if (v instanceof PyObject) return `${v.module}.${v.name}`;
  return v.constructor.name;
}

/** The items of a list or tuple, or undefined. */
export function pySequence(v: PyValue | undefined): PyValue[] | undefined {
  if (Array.isArray(v)) return v;
  if (v instanceof PyTuple) return v.items;
  return undefined;
}
