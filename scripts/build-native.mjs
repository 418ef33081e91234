#!/usr/bin/env node
// Builds the native addon with cmake-js into build/Release/facegan.node (`npm run build:native` in a
// clone; `npx facegan build-native` in a project that installed facegan-native).
// The CUDA backend is compiled when CMake finds a CUDA toolkit (set FACEGAN_CUDA=0 to skip it).
// FACEGAN_TOOLS=1 also builds the C++ check / bench / unit executables into build/bin
// (FACEGAN_EMU_SANITIZERS=1: also facegan-unit-asan / -tsan).
// Extra arguments are passed to cmake-js (e.g. --debug).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js');
} catch {
  console.error(
    'facegan build-native: cmake-js is not installed. Install it next to facegan-native\n' +
      '  npm install --save-dev cmake-js\n' +
      'and make sure CMake >= 3.18 and a C++17 compiler are on the PATH, then run this again.',
  );
  process.exit(1);
}

const cuda = process.env.FACEGAN_CUDA === '0' ? 'OFF' : 'ON';
const common = [
  '--parallel', String(Math.max(1, os.availableParallelism?.() ?? os.cpus().length)),
  `--CDFACEGAN_CUDA=${cuda}`,
  `--CDFACEGAN_TOOLS=${process.env.FACEGAN_TOOLS === '1' ? 'ON' : 'OFF'}`,
  // With the tools: build/bin/facegan-unit-asan and -tsan (the emulated CUDA kernels under sanitizers).
  `--CDFACEGAN_EMU_SANITIZERS=${process.env.FACEGAN_EMU_SANITIZERS === '1' ? 'ON' : 'OFF'}`,
  ...(process.env.FACEGAN_CUDA_ARCHITECTURES ? [`--CDFACEGAN_CUDA_ARCHITECTURES=${process.env.FACEGAN_CUDA_ARCHITECTURES}`] : []),
  ...process.argv.slice(2),
];
// Configure every time (cheap) so that changed options apply to an existing build directory,
// then build; unchanged objects are reused.
for (const step of process.env.FACEGAN_REBUILD === '1' ? ['clean', 'configure', 'build'] : ['configure', 'build']) {
  const r = spawnSync(process.execPath, [cmakeJs, step, ...(step === 'clean' ? [] : common)], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
