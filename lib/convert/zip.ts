/**
 * A small, hostile-input-safe zip reader, and the PyTorch zip checkpoint format (`torch.save`
 * since PyTorch 1.6) on top of it.
 *
 * Zip: the central directory is the authority (local headers are only checked against it);
 * entries are STORED (what `torch.save` writes, 64-byte aligned through padding in the local
 * extra field) or DEFLATEd (inflated with a hard output bound); ZIP64 sizes and offsets are
 * read where the 32-bit fields overflow. Every size and offset is checked against the bytes
 * present before use, the entry count is bounded, names must be plain relative paths, and each
 * entry's CRC-32 is verified when it is read.
 *
 * PyTorch archive: `<name>/data.pkl` (the object; storages as persistent ids
 * `('storage', storage_type, key, location, numel)`), `<name>/data/<key>` (each storage's raw
 * bytes), `<name>/version` (or `<name>/.data/version`) and optionally `<name>/byteorder`
 * (`little` or `big`; big-endian data are byte-swapped into copies). The pickle is read by the
 * restricted reader of pickle.ts with the caller's allow-list; nothing is executed.
 */
import zlib from 'node:zlib';
import { FaceganError } from '../errors.js';
import { ELEMENT_SIZE, unpickle, type GlobalTable, type PyValue } from './pickle.js';
import { MAX_TENSOR_ELEMENTS, TorchStorage, parseStoragePid } from './torch.js';

// ---------------------------------------------------------------------------------------------
// Zip.

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;

const EOCD_SIZE = 22;
const EOCD64_LOCATOR_SIZE = 20;
const EOCD64_MIN_SIZE = 56;
const CENTRAL_HEADER_SIZE = 46;
const LOCAL_HEADER_SIZE = 30;

/** More entries than any checkpoint has (a training checkpoint with optimiser states has thousands). */
export const MAX_ZIP_ENTRIES = 1_000_000;
/** The largest entry we inflate or hand out (bytes): a tensor of MAX_TENSOR_ELEMENTS float64s. */
export const MAX_ZIP_ENTRY_SIZE = MAX_TENSOR_ELEMENTS * 8;
const MAX_NAME_LENGTH = 1024;
/** Deflate cannot expand data by more than about 1032:1. */
const MAX_DEFLATE_RATIO = 1032;

export interface ZipEntry {
  /** The name as stored (validated: a relative path of printable ASCII, no `..`). */
  readonly name: string;
  /** 0 = stored, 8 = deflate. */
  readonly method: 0 | 8;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localHeaderOffset: number;
}

function corrupt(message: string): FaceganError {
  return new FaceganError('ERR_CORRUPT_FILE', `Corrupt zip archive: ${message}`);
}

function truncated(message: string): FaceganError {
  return new FaceganError('ERR_TRUNCATED_FILE', `Truncated zip archive: ${message}`);
}

/** True when the bytes start like a zip file (a local file header). */
export function looksLikeZip(buf: Uint8Array): boolean {
  return buf.length >= 4 && buf[0] === 0x50 && buf[1] === 0x4b && buf[2] === 0x03 && buf[3] === 0x04;
}

/**
 * The offset of the end-of-central-directory record: in the last 22 bytes unless the archive
 * has a comment (then searched back over at most 64 KiB); -1 when there is none.
 */
export function findEndRecord(buf: Uint8Array): number {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const len = buf.length;
  for (let p = len - EOCD_SIZE; p >= 0 && p >= len - EOCD_SIZE - 0xffff; p--) {
    if (dv.getUint32(p, true) === SIG_EOCD && dv.getUint16(p + 20, true) === len - p - EOCD_SIZE) return p;
  }
  return -1;
}

/** The name in the local header at the start of `buf`, if that header is complete. */
function firstEntryName(buf: Uint8Array): string | undefined {
  if (!looksLikeZip(buf) || buf.length < LOCAL_HEADER_SIZE) return undefined;
  const nameLen = buf[26]! | (buf[27]! << 8);
  if (LOCAL_HEADER_SIZE + nameLen > buf.length) return undefined;
  return Buffer.from(buf.buffer, buf.byteOffset + LOCAL_HEADER_SIZE, nameLen).toString('latin1');
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE), with node:zlib's implementation where this Node has one. */
export function crc32(data: Uint8Array): number {
  const native = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
  if (typeof native === 'function') return native(data) >>> 0;
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function validName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) return false;
  if (!/^[\x20-\x7e]+$/.test(name) || name.includes('\\') || name.startsWith('/')) return false;
  return name.split('/').every((part, i, all) => part !== '..' && part !== '.' && (part !== '' || i === all.length - 1));
}

/** The entries of a zip file held in memory; {@link ZipArchive.read} returns an entry's bytes. */
export class ZipArchive {
  readonly entries: ReadonlyMap<string, ZipEntry>;
  private readonly dv: DataView;
  /** Where the central directory starts: entry data must end before it. */
  private readonly dataEnd: number;

  private constructor(private readonly buf: Uint8Array, entries: Map<string, ZipEntry>, dataEnd: number) {
    this.entries = entries;
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.dataEnd = dataEnd;
  }

  /**
   * Parses the central directory of `buf` (nothing else is read until {@link read}).
   * @throws FaceganError ERR_TRUNCATED_FILE (no end-of-central-directory record, or a directory
   *   reaching past the end), ERR_CORRUPT_FILE (anything inconsistent).
   */
  static open(buf: Uint8Array): ZipArchive {
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const len = buf.length;
    const u64 = (at: number, what: string): number => {
      const lo = dv.getUint32(at, true);
      const hi = dv.getUint32(at + 4, true);
      if (hi >= 0x200000) throw corrupt(`${what} is beyond 2^53`);
      return hi * 2 ** 32 + lo;
    };

    const eocd = findEndRecord(buf);
    if (eocd < 0) throw truncated('no end-of-central-directory record (the file was cut short, or is not a complete zip file)');
    const disk = dv.getUint16(eocd + 4, true);
    const cdDisk = dv.getUint16(eocd + 6, true);
    let diskEntries = dv.getUint16(eocd + 8, true);
    let count = dv.getUint16(eocd + 10, true);
    let cdSize = dv.getUint32(eocd + 12, true);
    let cdOffset = dv.getUint32(eocd + 16, true);
    let cdLimit = eocd; // the directory must end before this
    if (count === 0xffff || diskEntries === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - EOCD64_LOCATOR_SIZE;
      if (loc < 0 || dv.getUint32(loc, true) !== SIG_EOCD64_LOCATOR) throw corrupt('ZIP64 sizes without a ZIP64 end-of-central-directory locator');
      if (dv.getUint32(loc + 4, true) !== 0 || dv.getUint32(loc + 16, true) !== 1) throw corrupt('multi-disk archives are not supported');
      const rec = u64(loc + 8, 'the ZIP64 end-of-central-directory offset');
      if (rec + EOCD64_MIN_SIZE > loc) throw corrupt('the ZIP64 end-of-central-directory record lies outside the file');
      if (dv.getUint32(rec, true) !== SIG_EOCD64) throw corrupt('bad ZIP64 end-of-central-directory signature');
      if (dv.getUint32(rec + 16, true) !== 0 || dv.getUint32(rec + 20, true) !== 0) throw corrupt('multi-disk archives are not supported');
      diskEntries = u64(rec + 24, 'the entry count');
      count = u64(rec + 32, 'the entry count');
      cdSize = u64(rec + 40, 'the central directory size');
      cdOffset = u64(rec + 48, 'the central directory offset');
      cdLimit = rec;
    } else if (disk !== 0 || cdDisk !== 0) {
      throw corrupt('multi-disk archives are not supported');
    }
    if (diskEntries !== count) throw corrupt('multi-disk archives are not supported');
    if (count > MAX_ZIP_ENTRIES) throw corrupt(`${count} entries (at most ${MAX_ZIP_ENTRIES} are read)`);
    if (cdOffset + cdSize > cdLimit) {
      if (cdOffset + cdSize > len) throw truncated(`the central directory (${cdSize} bytes at ${cdOffset}) reaches past the end of the ${len}-byte file`);
      throw corrupt(`the central directory (${cdSize} bytes at ${cdOffset}) overlaps its end record`);
    }
    if (count * CENTRAL_HEADER_SIZE > cdSize) throw corrupt(`${count} entries cannot fit in a ${cdSize}-byte central directory`);

    const entries = new Map<string, ZipEntry>();
    const end = cdOffset + cdSize;
    let p = cdOffset;
    for (let i = 0; i < count; i++) {
      if (p + CENTRAL_HEADER_SIZE > end) throw corrupt(`central directory entry ${i} runs past the directory`);
      if (dv.getUint32(p, true) !== SIG_CENTRAL) throw corrupt(`bad central directory entry signature at byte ${p}`);
      const flags = dv.getUint16(p + 8, true);
      const method = dv.getUint16(p + 10, true);
      const crc = dv.getUint32(p + 16, true);
      let compressedSize = dv.getUint32(p + 20, true);
      let size = dv.getUint32(p + 24, true);
      const nameLen = dv.getUint16(p + 28, true);
      const extraLen = dv.getUint16(p + 30, true);
      const commentLen = dv.getUint16(p + 32, true);
      let startDisk = dv.getUint16(p + 34, true);
      let localHeaderOffset = dv.getUint32(p + 42, true);
      const next = p + CENTRAL_HEADER_SIZE + nameLen + extraLen + commentLen;
      if (next > end) throw corrupt(`central directory entry ${i} runs past the directory`);
      const nameBytes = buf.subarray(p + CENTRAL_HEADER_SIZE, p + CENTRAL_HEADER_SIZE + nameLen);
      const name = Buffer.from(nameBytes.buffer, nameBytes.byteOffset, nameBytes.byteLength).toString('latin1');
      if (!validName(name)) throw corrupt(`entry ${i} has an unacceptable name ${JSON.stringify(name.slice(0, 80))}`);
      if (flags & 0x41) throw corrupt(`entry ${name} is encrypted`);
      if (method !== 0 && method !== 8) throw corrupt(`entry ${name} uses compression method ${method} (only stored and deflate are supported)`);

      // ZIP64 extended information: the 64-bit values, in order, for the fields that overflowed.
      if (size === 0xffffffff || compressedSize === 0xffffffff || localHeaderOffset === 0xffffffff || startDisk === 0xffff) {
        let q = p + CENTRAL_HEADER_SIZE + nameLen;
        const extraEnd = q + extraLen;
        let found = false;
        while (q + 4 <= extraEnd) {
          const id = dv.getUint16(q, true);
          const n = dv.getUint16(q + 2, true);
          if (q + 4 + n > extraEnd) throw corrupt(`entry ${name} has a malformed extra field`);
          if (id === 0x0001) {
            let r = q + 4;
            const take = (what: string): number => {
              if (r + 8 > q + 4 + n) throw corrupt(`entry ${name} has a short ZIP64 extra field`);
              const v = u64(r, `the ${what} of ${name}`);
              r += 8;
              return v;
            };
            if (size === 0xffffffff) size = take('size');
            if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
            if (localHeaderOffset === 0xffffffff) localHeaderOffset = take('offset');
            if (startDisk === 0xffff) {
              if (r + 4 > q + 4 + n) throw corrupt(`entry ${name} has a short ZIP64 extra field`);
              startDisk = dv.getUint32(r, true);
            }
            found = true;
            break;
          }
          q += 4 + n;
        }
        if (!found) throw corrupt(`entry ${name} has 32-bit overflow markers but no ZIP64 extra field`);
      }
      if (startDisk !== 0) throw corrupt('multi-disk archives are not supported');
      if (localHeaderOffset + LOCAL_HEADER_SIZE > cdOffset) {
        if (localHeaderOffset + LOCAL_HEADER_SIZE > len) throw truncated(`entry ${name} starts past the end of the file`);
        throw corrupt(`entry ${name} starts inside the central directory`);
      }
      if (method === 0 && compressedSize !== size) throw corrupt(`stored entry ${name} declares ${size} bytes but occupies ${compressedSize}`);
      if (size > MAX_ZIP_ENTRY_SIZE) throw corrupt(`entry ${name} declares ${size} bytes (more than the ${MAX_ZIP_ENTRY_SIZE} read)`);
      if (compressedSize > cdOffset) {
        if (compressedSize > len) throw truncated(`entry ${name} declares ${compressedSize} bytes, more than the whole ${len}-byte file`);
        throw corrupt(`entry ${name} declares ${compressedSize} bytes, more than the data area`);
      }
      if (method === 8 && size > compressedSize * MAX_DEFLATE_RATIO + 1024) {
        throw corrupt(`entry ${name} declares ${size} bytes from ${compressedSize} deflated bytes (impossible)`);
      }
      if (entries.has(name)) throw corrupt(`two entries are named ${JSON.stringify(name)}`);
      entries.set(name, { name, method, crc32: crc, compressedSize, size, localHeaderOffset });
      p = next;
    }
    return new ZipArchive(buf, entries, cdOffset);
  }

  /**
   * The bytes of an entry: a view into the archive for a stored entry, a new buffer for a
   * deflated one (never more than its declared size). The CRC-32 is checked.
   */
  read(name: string): Uint8Array {
    const e = this.entries.get(name);
    if (e === undefined) throw corrupt(`no entry ${JSON.stringify(name)}`);
    const dv = this.dv;
    const at = e.localHeaderOffset;
    if (dv.getUint32(at, true) !== SIG_LOCAL) throw corrupt(`bad local header signature for ${name}`);
    const nameLen = dv.getUint16(at + 26, true);
    const extraLen = dv.getUint16(at + 28, true);
    const start = at + LOCAL_HEADER_SIZE + nameLen + extraLen;
    if (start > this.dataEnd) throw corrupt(`the local header of ${name} runs into the central directory`);
    const localName = Buffer.from(this.buf.buffer, this.buf.byteOffset + at + LOCAL_HEADER_SIZE, nameLen).toString('latin1');
    if (localName !== name) throw corrupt(`the local header of ${name} names ${JSON.stringify(localName.slice(0, 80))}`);
    if (dv.getUint16(at + 8, true) !== e.method) throw corrupt(`the local header of ${name} disagrees on the compression method`);
    if (start + e.compressedSize > this.dataEnd) {
      if (start + e.compressedSize > this.buf.length) throw truncated(`the data of ${name} reaches past the end of the file`);
      throw corrupt(`the data of ${name} (${e.compressedSize} bytes at ${start}) runs into the central directory`);
    }
    const raw = this.buf.subarray(start, start + e.compressedSize);
    let data: Uint8Array;
    if (e.method === 0) {
      data = raw;
    } else {
      try {
        data = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
          throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt zip archive: ${name} inflates to more than its declared ${e.size} bytes`, { cause: err });
        }
        throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt zip archive: ${name} is not valid deflate data (${(err as Error).message})`, { cause: err });
      }
      if (data.length !== e.size) throw corrupt(`${name} inflates to ${data.length} bytes but declares ${e.size}`);
      data = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    }
    if (crc32(data) !== e.crc32) throw corrupt(`${name} fails its CRC-32 check`);
    return data;
  }
}

// ---------------------------------------------------------------------------------------------
// PyTorch zip archives.

/** The record format versions we accept (torch writes 1–3 for plain data; TorchScript more). */
const MAX_TORCH_ARCHIVE_VERSION = 64;

export interface TorchArchive {
  /** The unpickled `data.pkl`, its tensors backed by the storages' bytes. */
  value: PyValue;
  /** The archive's top-level folder (`archive`, or the saved file's name). */
  prefix: string;
  version: number;
  byteorder: 'little' | 'big';
}

function archiveCorrupt(what: string, message: string): FaceganError {
  return new FaceganError('ERR_CORRUPT_FILE', `Corrupt ${what}: ${message}`);
}

function swapBytes(bytes: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += size) for (let j = 0; j < size; j++) out[i + j] = bytes[i + size - 1 - j]!;
  return out;
}

function asciiRecord(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 64)).toString('latin1').trim();
}

/**
 * Reads a PyTorch zip archive (what `torch.save` writes since 1.6): unpickles `data.pkl` with
 * `globals`, giving each storage the bytes of its `data/<key>` record.
 * @throws FaceganError ERR_TRUNCATED_FILE, ERR_CORRUPT_FILE, ERR_FORBIDDEN_GLOBAL.
 */
export function readTorchZip(buf: Uint8Array, options: { globals: GlobalTable; what?: string }): TorchArchive {
  const what = options.what ?? 'PyTorch archive';
  if (findEndRecord(buf) < 0) {
    // torch.save writes data.pkl first: with that evidence a missing end record means a cut file.
    const first = firstEntryName(buf);
    if (first === undefined || !/^[^/]+\/data\.pkl$/.test(first)) {
      throw new FaceganError('ERR_UNKNOWN_FORMAT', 'A zip file without an end-of-central-directory record whose first entry is not <name>/data.pkl: neither a complete zip file nor a PyTorch archive');
    }
  }
  const zip = ZipArchive.open(buf);
  let prefix: string | undefined;
  for (const name of zip.entries.keys()) {
    const m = /^([^/]+)\/data\.pkl$/.exec(name);
    if (m === null) continue;
    if (prefix !== undefined) throw archiveCorrupt(what, 'more than one data.pkl');
    prefix = m[1]!;
  }
  if (prefix === undefined) throw archiveCorrupt(what, 'a zip file without <name>/data.pkl (not a torch.save archive)');

  const versionName = [`${prefix}/.data/version`, `${prefix}/version`].find((n) => zip.entries.has(n));
  if (versionName === undefined) throw archiveCorrupt(what, 'no version record');
  const versionText = asciiRecord(zip.read(versionName));
  const version = /^\d{1,4}$/.test(versionText) ? Number(versionText) : NaN;
  if (!(version >= 1 && version <= MAX_TORCH_ARCHIVE_VERSION)) {
    throw archiveCorrupt(what, `unsupported archive version ${JSON.stringify(versionText.slice(0, 20))}`);
  }
  let byteorder: 'little' | 'big' = 'little';
  if (zip.entries.has(`${prefix}/byteorder`)) {
    const b = asciiRecord(zip.read(`${prefix}/byteorder`));
    if (b !== 'little' && b !== 'big') throw archiveCorrupt(what, `byteorder record is ${JSON.stringify(b.slice(0, 20))}`);
    byteorder = b;
  }

  const storages = new Map<string, TorchStorage>();
  const pkl = zip.read(`${prefix}/data.pkl`);
  const { value, end } = unpickle(pkl, {
    globals: options.globals,
    what: `${what} (data.pkl)`,
    persistentLoad(pid) {
      const p = parseStoragePid(pid);
      const existing = storages.get(p.key);
      if (existing !== undefined) {
        if (existing.kind !== p.kind || existing.numel !== p.numel) throw archiveCorrupt(what, `storage ${JSON.stringify(p.key)} is declared twice differently`);
        return existing;
      }
      if (!/^[A-Za-z0-9_.-]{1,128}$/.test(p.key) || p.key === '.' || p.key === '..') {
        throw archiveCorrupt(what, `storage key ${JSON.stringify(p.key.slice(0, 40))} is not a plain name`);
      }
      const record = `${prefix}/data/${p.key}`;
      const entry = zip.entries.get(record);
      if (entry === undefined) throw archiveCorrupt(what, `storage ${JSON.stringify(p.key)} has no record ${record}`);
      const itemsize = ELEMENT_SIZE[p.kind];
      // Compare the declared element count with the record before anything is read.
      if (p.numel > MAX_ZIP_ENTRY_SIZE / itemsize || p.numel * itemsize !== entry.size) {
        throw archiveCorrupt(what, `storage ${JSON.stringify(p.key)} declares ${p.numel} elements of ${itemsize} bytes but its record holds ${entry.size} bytes`);
      }
      const s = new TorchStorage(p.typeName, p.kind, p.numel, p.key);
      const bytes = zip.read(record);
      s.setData(byteorder === 'big' && itemsize > 1 ? swapBytes(bytes, itemsize) : bytes);
      storages.set(p.key, s);
      return s;
    },
  });
  if (end !== pkl.length) throw archiveCorrupt(what, `data.pkl has ${pkl.length - end} bytes after its STOP opcode`);
  return { value, prefix, version, byteorder };
}
