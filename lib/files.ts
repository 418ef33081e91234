/** File helpers shared by the converters and exporters. */
import { randomBytes } from 'node:crypto';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { FaceganError } from './errors.js';

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
