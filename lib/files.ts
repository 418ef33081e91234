/** File helpers shared by the converters and exporters. */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, type Stats } from 'node:fs';
import { open, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { constants as bufferConstants } from 'node:buffer';
import { FaceganError } from './errors.js';

/**
 * The largest checkpoint file (or TensorFlow.js shard / model.json) that is read: 4 GiB, or
 * less where this Node's Buffers cannot be that large. Official StyleGAN2 pickles are under
 * 400 MB; a larger file gets ERR_FILE_TOO_LARGE before anything is allocated.
 */
export const MAX_INPUT_FILE_BYTES: number = Math.min(4 * 2 ** 30, bufferConstants.MAX_LENGTH);

const CHUNK = 64 * 2 ** 20;

function kindOf(st: { isCharacterDevice(): boolean; isBlockDevice(): boolean; isFIFO(): boolean; isSocket(): boolean; isDirectory(): boolean }): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Reads a whole regular file, refusing anything else before opening it: devices (/dev/zero
 * would never end), FIFOs (opening one blocks until a writer comes), sockets, directories, and
 * files over `limit` bytes. Links are followed.
 * @throws FaceganError ERR_FILE_NOT_FOUND (missing or unreadable), ERR_UNKNOWN_FORMAT (not a
 *   regular file), ERR_FILE_TOO_LARGE (over the limit), ERR_TRUNCATED_FILE (shrank while read).
 */
export async function readRegularFile(file: string, what = 'file', limit = MAX_INPUT_FILE_BYTES): Promise<Buffer> {
  const label = `The ${what} ${JSON.stringify(file)}`;
  const notFound = (err: unknown): FaceganError => {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be read (${code ?? (err as Error).message})`;
    return new FaceganError('ERR_FILE_NOT_FOUND', `${label} ${why}`, { cause: err });
  };
  const check = (st: Stats): number => {
    if (!st.isFile()) {
      throw new FaceganError('ERR_UNKNOWN_FORMAT', `${label} is ${kindOf(st)}; only regular files are read`);
    }
    if (st.size > limit) {
      throw new FaceganError('ERR_FILE_TOO_LARGE', `${label} is ${st.size} bytes; the limit is ${limit} bytes (${(limit / 2 ** 30).toFixed(2)} GiB)`);
    }
    return Number(st.size);
  };
  let st;
  try {
    st = await stat(file);
  } catch (err) {
    throw notFound(err);
  }
  check(st);
  // O_NONBLOCK: should the path have become a FIFO since the stat, open() does not wait for a writer.
  let fh;
  try {
    fh = await open(file, fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0));
  } catch (err) {
    throw notFound(err);
  }
  try {
    const size = check(await fh.stat());
    const buf = Buffer.allocUnsafe(size);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await fh.read(buf, off, Math.min(CHUNK, size - off), off);
      if (bytesRead === 0) {
        throw new FaceganError('ERR_TRUNCATED_FILE', `${label} shrank to ${off} bytes while it was read (it was ${size})`);
      }
      off += bytesRead;
    }
    return buf;
  } catch (err) {
    if (err instanceof FaceganError) throw err;
    throw notFound(err);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Writes `bytes` to a temporary file beside `dst`, then renames it: `dst` is never half written. */
export async function writeFileAtomic(dst: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${dst}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, dst);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new FaceganError('ERR_FILE_NOT_FOUND', `Cannot write ${JSON.stringify(dst)}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * True when `a` and `b` name the same file (after links, hard or symbolic): both exist and have
 * the same device and inode. False when either does not exist.
 */
export async function sameFile(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([stat(a, { bigint: true }).catch(() => null), stat(b, { bigint: true }).catch(() => null)]);
  return sa !== null && sb !== null && sa.dev === sb.dev && sa.ino === sb.ino;
}
