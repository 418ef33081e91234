#!/usr/bin/env node
// prebuildify calls `<node-gyp> rebuild --target=<node version> --arch=<arch> ...`; cmake-js reads
// --target as a CMake target, so translate the call into cmake-js's own flags.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');

// FACEGAN_CUDA=0 builds the CPU-only addon (the main package's prebuilds), as build-native.mjs does.
const out = ['rebuild', `--CDFACEGAN_CUDA=${process.env.FACEGAN_CUDA === '0' ? 'OFF' : 'ON'}`, '--CDFACEGAN_TOOLS=OFF'];
for (const arg of process.argv.slice(2)) {
  const [key, value] = arg.split('=');
  if (key === '--target') out.push('--runtime-version', value);
  else if (key === '--arch') out.push('--arch', value);
  else if (key === '--runtime' || key === '--dist-url') out.push(`${key}=${value}`);
}
const r = spawnSync(process.execPath, [cmakeJs, ...out], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
