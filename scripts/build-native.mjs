#!/usr/bin/env node
// Builds the native addon with cmake-js into build/Release/facegan.node.
// The CUDA backend is compiled when CMake finds a CUDA toolkit (set FACEGAN_CUDA=0 to skip it).
// FACEGAN_TOOLS=1 also builds the C++ check / bench / unit executables into build/bin.
// Extra arguments are passed to cmake-js (e.g. --debug).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');

const cuda = process.env.FACEGAN_CUDA === '0' ? 'OFF' : 'ON';
const args = [
  cmakeJs,
  process.env.FACEGAN_REBUILD === '1' ? 'rebuild' : 'compile',
  '--parallel', String(Math.max(1, os.availableParallelism?.() ?? os.cpus().length)),
  `--CDFACEGAN_CUDA=${cuda}`,
  `--CDFACEGAN_TOOLS=${process.env.FACEGAN_TOOLS === '1' ? 'ON' : 'OFF'}`,
  ...(process.env.FACEGAN_CUDA_ARCHITECTURES ? [`--CDFACEGAN_CUDA_ARCHITECTURES=${process.env.FACEGAN_CUDA_ARCHITECTURES}`] : []),
  ...process.argv.slice(2),
];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
