#!/usr/bin/env node
// prebuildify's --node-gyp, so that prebuildify builds with cmake-js (scripts/pack-local.mjs runs
// `prebuildify --napi --strip --node-gyp <this>`; on Windows through prebuildify-node-gyp.cmd).
//
// prebuildify calls, in its --cwd,
//   <this> rebuild --target=<node version> --devdir=<cache> --arch=<arch> --release|--debug
// and then takes the first build/Release/*.node of that directory (strips it, moves it to
// prebuilds/<platform>-<arch>/). cmake-js reads --target as a CMake target, so the call is
// translated: the CMake project at the repository root is built by cmake-js into <cwd>/build
// (configure, then build: objects that did not change are reused; the addon is relinked, as
// prebuildify moved the last one away), with
//   FACEGAN_CUDA=0                     no CUDA backend (otherwise it is compiled: needs nvcc)
//   FACEGAN_CUDA_ARCHITECTURES         the GPU architectures to compile for
//   FACEGAN_PREBUILD_CMAKE_ARGS        a JSON array of further cmake-js arguments (pack-local:
//                                      the portable link, the glibc stubs, the MSVC runtime, ...)
// --target / --runtime select the Node headers only for an ABI-specific build; this addon is
// N-API (package.json binary.napi_versions), for which cmake-js uses node-api-headers.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');

const argv = process.argv.slice(2);
if (argv[0] !== 'rebuild') {
  console.error(`prebuildify-node-gyp: only \`rebuild\` is supported (prebuildify's call), not: ${argv.join(' ')}`);
  process.exit(2);
}
const common = ['--directory', root, '--out', path.join(process.cwd(), 'build')];
for (const arg of argv.slice(1)) {
  const [key, value] = arg.split(/=(.*)/s);
  if (key === '--target') common.push('--runtime-version', value);
  else if (key === '--runtime') common.push('--runtime', value);
  else if (key === '--arch') common.push('--arch', value);
  else if (key === '--debug') common.push('--debug');
  // --devdir, --dist-url, --release, --build_v8_with_gn: nothing to do for cmake-js.
}
common.push(
  '--parallel', String(Math.max(1, os.availableParallelism?.() ?? os.cpus().length)),
  `--CDFACEGAN_CUDA=${process.env.FACEGAN_CUDA === '0' ? 'OFF' : 'ON'}`,
  '--CDFACEGAN_TOOLS=OFF',
  ...(process.env.FACEGAN_CUDA_ARCHITECTURES ? [`--CDFACEGAN_CUDA_ARCHITECTURES=${process.env.FACEGAN_CUDA_ARCHITECTURES}`] : []),
  ...(process.env.FACEGAN_PREBUILD_CMAKE_ARGS ? JSON.parse(process.env.FACEGAN_PREBUILD_CMAKE_ARGS) : []),
);
// Configure every time (cheap), so that changed options apply to an existing build directory.
for (const step of ['configure', 'build']) {
  console.log(`prebuildify-node-gyp: cmake-js ${step} ${common.join(' ')}`);
  const r = spawnSync(process.execPath, [cmakeJs, step, ...common], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
