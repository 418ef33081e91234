/**
 * Where facegan keeps what it downloads and converts.
 *
 * `FACEGAN_HOME`, when set, is the cache directory itself. Otherwise the platform's cache directory:
 * - Linux and other Unixes: `$XDG_CACHE_HOME/facegan`, or `~/.cache/facegan`
 * - macOS: `~/Library/Caches/facegan`
 * - Windows: `%LOCALAPPDATA%\facegan\Cache`, or `~\AppData\Local\facegan\Cache`
 *
 * Inside it: `downloads/` (the original checkpoints and their `.part` files) and `models/`
 * (the converted `<id>.safetensors` files).
 */
import os from 'node:os';
import path from 'node:path';

import { FaceganError } from './errors.js';

export interface CacheDirOptions {
  /** The environment to read; `process.env` by default. */
  env?: Record<string, string | undefined>;
  /** The platform to lay the path out for; `process.platform` by default. */
  platform?: NodeJS.Platform;
  /** The user's home directory; `os.homedir()` by default. */
  homedir?: string;
}

/** The cache directory (not created). */
export function cacheDir(options: CacheDirOptions = {}): string {
  const env = options.env ?? process.env;
  const platform = options.platform ?? process.platform;
  const p = platform === 'win32' ? path.win32 : path.posix;

  const home = env.FACEGAN_HOME;
  if (home !== undefined && home !== '') return p.resolve(home);

  const homedir = options.homedir ?? os.homedir();
  const needHome = (): string => {
    if (!homedir) {
      throw new FaceganError(
        'ERR_FILE_NOT_FOUND',
        'Cannot locate a cache directory: the home directory is unknown. Set FACEGAN_HOME to a writable directory.',
      );
    }
    return homedir;
  };

  if (platform === 'win32') {
    const local = env.LOCALAPPDATA;
    const base = local && p.isAbsolute(local) ? local : p.join(needHome(), 'AppData', 'Local');
    return p.join(base, 'facegan', 'Cache');
  }
  if (platform === 'darwin') return p.join(needHome(), 'Library', 'Caches', 'facegan');

  // XDG Base Directory: a relative $XDG_CACHE_HOME is invalid and must be ignored.
  const xdg = env.XDG_CACHE_HOME;
  const base = xdg && p.isAbsolute(xdg) ? xdg : p.join(needHome(), '.cache');
  return p.join(base, 'facegan');
}

function join(options: CacheDirOptions | undefined, ...parts: string[]): string {
  const p = (options?.platform ?? process.platform) === 'win32' ? path.win32 : path.posix;
  return p.join(cacheDir(options), ...parts);
}

/** `<cache>/downloads`: original checkpoints as downloaded, and partial downloads (`*.part`). */
export function downloadsDir(options?: CacheDirOptions): string {
  return join(options, 'downloads');
}

/** `<cache>/models`: converted generators, `<id>.safetensors`. */
export function modelsDir(options?: CacheDirOptions): string {
  return join(options, 'models');
}
