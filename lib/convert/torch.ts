/**
 * PyTorch tensors and storages in pickles, and the legacy (non-zip) `torch.save` stream.
 *
 * The tensor model is independent of the container: a pickle's persistent ids name storages
 * ({@link parseStoragePid}); the container supplies their bytes ({@link TorchStorage.setData});
 * `torch._utils._rebuild_tensor_v2` & co. ({@link TORCH_TENSOR_GLOBALS}) build
 * {@link TorchTensor} views on them, which {@link TorchTensor.toFloat32} materialises. The legacy
 * stream ({@link readLegacyTorchStream}) is one such container; a zip-format reader can reuse
 * everything else.
 */
import { FaceganError } from '../errors.js';
import {
  BASE_GLOBALS, ELEMENT_SIZE, PyDict, PyExtension, PyGlobal, PyTuple,
  decodeToFloat32, gather, globalTable, unpickle,
  type ElementKind, type GlobalHandler, type GlobalTable, type PyValue,
} from './pickle.js';

/** The `torch.*Storage` class names we read, with their element kind. */
export const STORAGE_TYPES: Readonly<Record<string, ElementKind>> = Object.freeze({
  FloatStorage: 'f4',
  DoubleStorage: 'f8',
  HalfStorage: 'f2',
  BFloat16Storage: 'bf16',
  LongStorage: 'i8',
  IntStorage: 'i4',
  ShortStorage: 'i2',
  CharStorage: 'i1',
  ByteStorage: 'u1',
  BoolStorage: 'b1',
});

/** The largest tensor we materialise (elements): far above any generator's, far below memory limits. */
export const MAX_TENSOR_ELEMENTS = 2 ** 28;

function corrupt(message: string): FaceganError {
  return new FaceganError('ERR_CORRUPT_FILE', `Corrupt PyTorch data: ${message}`);
}

/** A typed storage: `numel` elements of `kind`; its bytes arrive from the container. */
export class TorchStorage extends PyExtension {
  /** Raw little-endian bytes (a view into the file), once the container has supplied them. */
  bytes: Uint8Array | null = null;

  constructor(
    readonly typeName: string,
    readonly kind: ElementKind,
    readonly numel: number,
    readonly key: string,
  ) {
    super();
  }

  get itemsize(): number { return ELEMENT_SIZE[this.kind]; }

  /** Supplies the data; its length must be exactly `numel × itemsize`. */
  setData(bytes: Uint8Array): void {
    if (this.bytes !== null) throw corrupt(`storage ${JSON.stringify(this.key)} is given data twice`);
    if (bytes.length !== this.numel * this.itemsize) {
      throw corrupt(`storage ${JSON.stringify(this.key)} declares ${this.numel} elements of ${this.itemsize} bytes but has ${bytes.length} bytes`);
    }
    this.bytes = bytes;
  }
}

/** A strided view of a storage (what `torch._utils._rebuild_tensor_v2` builds). */
export class TorchTensor extends PyExtension {
  readonly numel: number;

  constructor(
    readonly storage: TorchStorage,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
    readonly requiresGrad: boolean,
  ) {
    super();
    if (shape.length !== stride.length) throw corrupt(`tensor size [${shape.join(', ')}] and stride [${stride.join(', ')}] differ in rank`);
    let numel = 1;
    let maxIndex = offset;
    for (let d = 0; d < shape.length; d++) {
      numel *= shape[d]!;
      if (numel > MAX_TENSOR_ELEMENTS) throw corrupt(`tensor of size [${shape.join(', ')}] is too large`);
      if (shape[d]! > 0) maxIndex += (shape[d]! - 1) * stride[d]!;
    }
    if (numel > 0 && maxIndex >= storage.numel) {
      throw corrupt(`tensor (offset ${offset}, size [${shape.join(', ')}], stride [${stride.join(', ')}]) reaches past its storage of ${storage.numel} elements`);
    }
    this.numel = numel;
  }

  get isContiguous(): boolean {
    let expected = 1;
    for (let d = this.shape.length - 1; d >= 0; d--) {
      if (this.shape[d] !== 1 && this.stride[d] !== expected) return false;
      expected *= this.shape[d]!;
    }
    return true;
  }

  /** The elements in C order, as a new float32 array (float64 and integers are rounded). */
  toFloat32(): Float32Array {
    const bytes = this.storage.bytes;
    if (bytes === null) throw corrupt(`storage ${JSON.stringify(this.storage.key)} has no data`);
    const size = this.storage.itemsize;
    if (this.numel === 0) return new Float32Array(0);
    if (this.isContiguous) {
      return decodeToFloat32(bytes.subarray(this.offset * size), this.storage.kind, this.numel);
    }
    let maxIndex = this.offset;
    for (let d = 0; d < this.shape.length; d++) maxIndex += (this.shape[d]! - 1) * this.stride[d]!;
    const span = decodeToFloat32(bytes.subarray(this.offset * size), this.storage.kind, maxIndex - this.offset + 1);
    return gather(span, this.shape, this.stride, 0);
  }
}

function isIndex(v: PyValue | undefined): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function intTuple(v: PyValue | undefined, what: string): number[] {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : null;
  if (items === null || items.length > 16 || !items.every(isIndex)) throw corrupt(`tensor ${what} is not a tuple of non-negative integers`);
  return items as number[];
}

function rebuildTensor(args: PyValue[], min: number, max: number): TorchTensor {
  if (args.length < min || args.length > max) throw corrupt(`_rebuild_tensor expects ${min}–${max} arguments, got ${args.length}`);
  const [storage, offset, size, stride, requiresGrad] = args;
  if (!(storage instanceof TorchStorage)) throw corrupt('a tensor is built on something that is not a storage');
  if (!isIndex(offset)) throw corrupt('tensor storage offset is not a non-negative integer');
  return new TorchTensor(storage, offset, intTuple(size, 'size'), intTuple(stride, 'stride'), requiresGrad === true);
}

function rebuildParameter(args: PyValue[], min: number, max: number): TorchTensor {
  if (args.length < min || args.length > max) throw corrupt(`_rebuild_parameter expects ${min}–${max} arguments, got ${args.length}`);
  const data = args[0];
  if (!(data instanceof TorchTensor)) throw corrupt('a parameter wraps something that is not a tensor');
  return data;
}

/** A torch storage class named in a persistent id: an inert marker. */
const storageTypeMarker: GlobalHandler = {};

/**
 * `torch._tensor._rebuild_from_type_v2(func, type, args, state)`: how torch pickles a tensor
 * that carries Python attributes. We rebuild with `func` (itself an allow-listed rebuild
 * function) and drop the type and the attributes.
 */
const rebuildFromTypeV2: GlobalHandler = {
  call(args) {
    const [func, type, fargs] = args;
    if (args.length !== 4 || !(func instanceof PyGlobal) || !(type instanceof PyGlobal) || !(fargs instanceof PyTuple)) {
      throw corrupt('_rebuild_from_type_v2 expects (function, type, args, state)');
    }
    // Only the tensor rebuilders (never itself: no recursion driven by the file).
    if (func.module !== 'torch._utils' || !func.name.startsWith('_rebuild_') || func.handler.call === undefined) {
      throw corrupt(`_rebuild_from_type_v2 of ${func.qualifiedName}`);
    }
    const t = func.handler.call(fargs.items);
    if (!(t instanceof TorchTensor)) throw corrupt('_rebuild_from_type_v2 did not build a tensor');
    return t;
  },
};

/**
 * Globals for tensors inside any PyTorch pickle: the rebuild functions and the storage type
 * names that persistent ids use.
 */
export const TORCH_TENSOR_GLOBALS: ReadonlyArray<readonly [string, GlobalHandler]> = [
  ['torch._utils._rebuild_tensor_v2', { call: (a) => rebuildTensor(a, 6, 7) }],
  ['torch._utils._rebuild_tensor', { call: (a) => rebuildTensor(a, 4, 4) }],
  ['torch._utils._rebuild_parameter', { call: (a) => rebuildParameter(a, 3, 3) }],
  ['torch._utils._rebuild_parameter_with_state', { call: (a) => rebuildParameter(a, 4, 4) }],
  ['torch._tensor._rebuild_from_type_v2', rebuildFromTypeV2],
  ['torch.Tensor', {}],
  ['torch.nn.parameter.Parameter', {}],
  ...Object.keys(STORAGE_TYPES).map((name) => [`torch.${name}`, storageTypeMarker] as const),
];

export interface StoragePid {
  typeName: string;
  kind: ElementKind;
  key: string;
  location: string;
  numel: number;
}

/**
 * Parses a storage persistent id `('storage', storage_type, key, location, numel[, view_metadata])`
 * as written by `torch.save` (both the legacy and the zip format).
 */
export function parseStoragePid(pid: PyValue): StoragePid {
  if (!(pid instanceof PyTuple) || pid.length < 5 || pid.length > 6) throw corrupt('a persistent id is not a storage tuple');
  const [tag, type, key, location, numel, view] = pid.items;
  if (tag === 'module') throw corrupt('pickled module source checks (persistent id "module") are not supported');
  if (tag !== 'storage') throw corrupt(`unknown persistent id type ${JSON.stringify(String(tag).slice(0, 40))}`);
  if (!(type instanceof PyGlobal) || type.module !== 'torch' || !Object.prototype.hasOwnProperty.call(STORAGE_TYPES, type.name)) {
    throw corrupt('a storage persistent id names no known storage type');
  }
  if (typeof key !== 'string' && !isIndex(key)) throw corrupt('a storage key is neither a string nor an integer');
  if (typeof location !== 'string') throw corrupt('a storage location is not a string');
  if (!isIndex(numel)) throw corrupt('a storage size is not a non-negative integer');
  if (view !== undefined && view !== null) throw corrupt('storage views (view_metadata) are not supported');
  return { typeName: type.name, kind: STORAGE_TYPES[type.name]!, key: String(key), location, numel };
}

// ---------------------------------------------------------------------------------------------
// The legacy (pre-1.6, non-zip) torch.save stream.

/** `torch.serialization.MAGIC_NUMBER`. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL_VERSION = 1001;

const LEGACY_OBJECT_GLOBALS: GlobalTable = globalTable(BASE_GLOBALS, TORCH_TENSOR_GLOBALS);
const NO_GLOBALS: GlobalTable = globalTable();

const LEGACY_HEAD = Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);

/** True when `data` starts like a legacy `torch.save` stream (the magic number pickled with protocol 2). */
export function isLegacyTorchStream(data: Uint8Array): boolean {
  return data.length >= LEGACY_HEAD.length && LEGACY_HEAD.every((b, i) => data[i] === b);
}

/**
 * Reads a legacy `torch.save` stream: magic-number pickle, protocol-version pickle, sys-info
 * pickle, the object pickle (storages as persistent ids), a pickle listing the storage keys, then
 * for each key an 8-byte little-endian element count and the raw data. Storage data are views
 * into `data`. Declared sizes are checked against the bytes present before anything is used.
 * `globals` is the allow-list for the object pickle (default: containers and tensors only).
 */
export function readLegacyTorchStream(data: Uint8Array, what = 'torch.save stream', globals: GlobalTable = LEGACY_OBJECT_GLOBALS): PyValue {
  if (data.length >= 4 && data[0] === 0x50 && data[1] === 0x4b && data[2] === 0x03 && data[3] === 0x04) {
    throw new FaceganError('ERR_CORRUPT_FILE', `Unsupported ${what}: it is a zip-format torch.save archive inside a pickle`);
  }
  const opts = { globals: NO_GLOBALS, what };
  const magic = unpickle(data, opts);
  if (magic.value !== LEGACY_MAGIC) throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt ${what}: bad magic number`);
  const version = unpickle(data, { ...opts, start: magic.end });
  if (version.value !== LEGACY_PROTOCOL_VERSION) throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt ${what}: unsupported protocol version ${String(version.value).slice(0, 20)}`);
  const sysInfo = unpickle(data, { ...opts, start: version.end });
  if (!(sysInfo.value instanceof PyDict)) throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt ${what}: sys_info is not a dict`);
  if (sysInfo.value.get('little_endian') !== true) throw new FaceganError('ERR_CORRUPT_FILE', `Unsupported ${what}: saved on a big-endian machine`);

  const storages = new Map<string, TorchStorage>();
  const object = unpickle(data, {
    globals,
    what,
    start: sysInfo.end,
    persistentLoad(pid) {
      const p = parseStoragePid(pid);
      const existing = storages.get(p.key);
      if (existing !== undefined) {
        if (existing.kind !== p.kind || existing.numel !== p.numel) throw corrupt(`storage ${JSON.stringify(p.key)} is declared twice differently`);
        return existing;
      }
      const s = new TorchStorage(p.typeName, p.kind, p.numel, p.key);
      storages.set(p.key, s);
      return s;
    },
  });
  const keys = unpickle(data, { globals: NO_GLOBALS, what, start: object.end });
  if (!Array.isArray(keys.value)) throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt ${what}: the storage key list is not a list`);

  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = keys.end;
  for (const k of keys.value) {
    const storage = typeof k === 'string' || typeof k === 'number' ? storages.get(String(k)) : undefined;
    if (storage === undefined) throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt ${what}: data for storage ${JSON.stringify(String(k).slice(0, 40))}, which the object does not use`);
    if (data.length - pos < 8) throw new FaceganError('ERR_TRUNCATED_FILE', `Truncated ${what}: the size of storage ${JSON.stringify(storage.key)} is missing`);
    const lo = dv.getUint32(pos, true);
    const hi = dv.getUint32(pos + 4, true);
    pos += 8;
    const remaining = data.length - pos;
    // Compare against what is present before multiplying: a 2^40-element claim fails here, fast.
    if (hi >= 0x200000 || (hi * 2 ** 32 + lo) > remaining / storage.itemsize) {
      throw new FaceganError('ERR_TRUNCATED_FILE', `Truncated ${what}: storage ${JSON.stringify(storage.key)} declares ${hi >= 0x200000 ? 'more than 2^53' : hi * 2 ** 32 + lo} elements of ${storage.itemsize} bytes but only ${remaining} bytes remain`);
    }
    const count = hi * 2 ** 32 + lo;
    if (count !== storage.numel) throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt ${what}: storage ${JSON.stringify(storage.key)} holds ${count} elements but was declared with ${storage.numel}`);
    const n = count * storage.itemsize;
    storage.setData(new Uint8Array(data.buffer, data.byteOffset + pos, n));
    pos += n;
  }
  for (const s of storages.values()) {
    if (s.bytes === null) throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt ${what}: storage ${JSON.stringify(s.key)} has no data`);
  }
  return object.value;
}

/** `torch.storage._load_from_bytes(b)`: a storage pickled as a nested legacy torch.save stream. */
export const TORCH_LEGACY_GLOBALS: ReadonlyArray<readonly [string, GlobalHandler]> = [
  ['torch.storage._load_from_bytes', {
    call(args) {
      const [b] = args;
      if (args.length !== 1 || !(b instanceof Uint8Array)) throw corrupt('_load_from_bytes expects one bytes argument');
      return readLegacyTorchStream(b, 'torch.save stream inside the pickle');
    },
  }],
];
