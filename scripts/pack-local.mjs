#!/usr/bin/env node
// npm run pack:local — what a release publishes for this platform, as tarballs in build/pack/:
//
//   facegan-native-<v>.tgz                          the main package (JS, types, C++ sources)
//   facegan-native-<platform>-<arch>-<v>.tgz        the CPU addon for this platform
//   facegan-native-<platform>-<arch>-cuda-<v>.tgz   the CUDA addon (Linux/Windows x64, when nvcc is
//                                                   found and FACEGAN_CUDA is not 0)
//   facegan-native-weights-progan-celeba128-<w>.tgz the default model (its own version)
//
// Each package is staged in build/pack/stage/<name>/ and packed from there with `npm pack`.
// The main package's manifest gets, at this point and only in the staged copy, its
// optionalDependencies (every npm/<platform> package, at the main version) and its dependency on
// the weights package: the repository's own package.json names none of them, so that installing
// a clone never asks the registry for @facegan-native/* packages.
//
// Binaries are made by prebuildify (`prebuildify --napi --strip`), which builds through
// scripts/prebuildify-node-gyp.mjs (its --node-gyp: prebuildify calls `<node-gyp> rebuild
// --target=...`, which that script turns into cmake-js calls) in build/pack-work/<package>/build
// (the developer build in build/Release is left alone), strips the addon and puts it in
// build/pack-work/<package>/prebuilds/<platform>-<arch>/facegan[.glibc].node — the layout
// node-gyp-build reads, and what the binary package ships. They are built with FACEGAN_PORTABLE=ON:
// libstdc++/libgcc linked in and, on Linux, the glibc baseline's symbol versions
// (scripts/glibc-compat.mjs), then checked with scripts/check-glibc.mjs. Options: --skip-build
// (pack the prebuilds build/pack-work holds), --glibc-baseline 2.17, FACEGAN_CUDA=0 (no CUDA
// package), FACEGAN_CUDA_ARCHITECTURES.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

if (process.env.npm_lifecycle_event === 'prepack') {
  // `npm pack` / `npm publish` in the repository root would make a main package without its
  // platform and weights dependencies: point at the real thing instead.
  console.error(
    'facegan-native is packed with `npm run pack:local` (tarballs in build/pack/, published by\n' +
      '.github/workflows/release.yml); a plain `npm pack` here would lack the binary and weights packages.',
  );
  process.exit(1);
}
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const skipBuild = args.includes('--skip-build');
const bi = args.indexOf('--glibc-baseline');
const glibcBaseline = bi >= 0 ? args[bi + 1] : '2.17';

const packDir = path.join(root, 'build', 'pack');
const stageDir = path.join(packDir, 'stage');
const workDir = path.join(root, 'build', 'pack-work');
const readJson = (f) => JSON.parse(fs.readFileSync(f, 'utf8'));
const writeJson = (f, v) => fs.writeFileSync(f, JSON.stringify(v, null, 2) + '\n');
const rootPkg = readJson(path.join(root, 'package.json'));

function run(cmd, argv, opts = {}) {
  console.log(`pack:local: ${path.basename(cmd)} ${argv.join(' ')}`);
  const r = spawnSync(cmd, argv, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) {
    console.error(`pack:local: failed (${path.basename(cmd)} exited with ${r.status ?? r.signal})`);
    process.exit(1);
  }
}

const libc =
  process.platform === 'linux' ? (process.report.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl') : undefined;
const tag = `${process.platform}-${process.arch}${libc === 'musl' ? '-musl' : ''}`;
const nvcc = (() => {
  if (process.env.FACEGAN_CUDA === '0') return false;
  const r = spawnSync(process.platform === 'win32' ? 'where' : 'which', ['nvcc'], { encoding: 'utf8' });
  return r.status === 0;
})();

fs.rmSync(packDir, { recursive: true, force: true });
fs.mkdirSync(stageDir, { recursive: true });

/**
 * Makes the prebuild of binary package `name` with prebuildify into build/pack-work/<name>/prebuilds
 * and returns that directory (prebuilds/<platform>-<arch>/*.node).
 */
function prebuild(name, cuda) {
  const cwd = path.join(workDir, name);
  const prebuilds = path.join(cwd, 'prebuilds');
  const addons = () =>
    fs.existsSync(prebuilds)
      ? fs.readdirSync(prebuilds, { recursive: true }).filter((f) => String(f).endsWith('.node')).map((f) => path.join(prebuilds, String(f)))
      : [];
  if (skipBuild) {
    if (addons().length === 0) throw new Error(`--skip-build: ${prebuilds} holds no prebuild`);
    return prebuilds;
  }
  // The cmake-js arguments of a portable binary, handed to scripts/prebuildify-node-gyp.mjs.
  const cmakeArgs = [
    '--CDFACEGAN_PORTABLE=ON',
    // Windows: the static MSVC runtime, so no VC++ redistributable is needed.
    ...(process.platform === 'win32' ? ['--CDCMAKE_MSVC_RUNTIME_LIBRARY=MultiThreaded'] : []),
    // macOS: the oldest system each architecture's binary supports.
    ...(process.platform === 'darwin' ? [`--CDCMAKE_OSX_DEPLOYMENT_TARGET=${process.arch === 'arm64' ? '11.0' : '10.15'}`] : []),
  ];
  if (libc === 'glibc') {
    const compat = path.join(workDir, 'glibc-compat');
    run(process.execPath, [path.join(root, 'scripts', 'glibc-compat.mjs'), compat, '--baseline', glibcBaseline]);
    cmakeArgs.push(`--CDFACEGAN_GLIBC_COMPAT_DIR=${compat}`);
  }
  fs.rmSync(prebuilds, { recursive: true, force: true });
  fs.mkdirSync(cwd, { recursive: true });
  const prebuildify = path.join(path.dirname(require.resolve('prebuildify/package.json')), 'bin.js');
  const nodeGyp = path.join(root, 'scripts', process.platform === 'win32' ? 'prebuildify-node-gyp.cmd' : 'prebuildify-node-gyp.mjs');
  run(
    process.execPath,
    [
      prebuildify,
      '--napi',
      '--strip',
      '--name', 'facegan',
      ...(libc ? [`--tag-libc=${libc}`] : []),
      '--node-gyp', nodeGyp,
      '--cwd', cwd,
      '--out', cwd,
    ],
    {
      env: {
        ...process.env,
        FACEGAN_CUDA: cuda ? '1' : '0',
        FACEGAN_PREBUILD_CMAKE_ARGS: JSON.stringify(cmakeArgs),
      },
    },
  );
  const built = addons();
  if (built.length !== 1) throw new Error(`prebuildify left ${built.length} addons in ${prebuilds}: ${built.join(', ')}`);
  if (libc === 'glibc') run(process.execPath, [path.join(root, 'scripts', 'check-glibc.mjs'), built[0], '--baseline', glibcBaseline]);
  return prebuilds;
}

function npmPack(dir) {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const out = execFileSync(npm, ['pack', '--json', '--pack-destination', packDir], {
    cwd: dir,
    encoding: 'utf8',
    shell: process.platform === 'win32',
    env: { ...process.env, npm_config_ignore_scripts: 'true' },
  });
  const [info] = JSON.parse(out);
  const file = path.join(packDir, info.filename);
  console.log(`pack:local: ${path.relative(root, file)}  ${(info.size / 1e6).toFixed(2)} MB packed, ${(info.unpackedSize / 1e6).toFixed(2)} MB unpacked, ${info.entryCount} files`);
  return { file, info };
}

const packed = [];

// 1. Binary packages for this platform.
const binaryPackages = [];
for (const [name, cuda] of [
  [tag, false],
  [`${tag}-cuda`, true],
]) {
  const template = path.join(root, 'npm', name);
  if (!fs.existsSync(path.join(template, 'package.json'))) {
    if (!cuda) console.warn(`pack:local: no npm/${name}/package.json: ${tag} has no binary package; skipping it`);
    continue;
  }
  if (cuda && !nvcc) {
    console.log(`pack:local: skipping ${name} (${process.env.FACEGAN_CUDA === '0' ? 'FACEGAN_CUDA=0' : 'no nvcc on the PATH'})`);
    continue;
  }
  const prebuilds = prebuild(name, cuda);
  const stage = path.join(stageDir, name);
  fs.mkdirSync(stage, { recursive: true });
  const pkg = readJson(path.join(template, 'package.json'));
  pkg.version = rootPkg.version;
  writeJson(path.join(stage, 'package.json'), pkg);
  fs.cpSync(prebuilds, path.join(stage, 'prebuilds'), { recursive: true });
  fs.copyFileSync(path.join(root, 'LICENSE'), path.join(stage, 'LICENSE'));
  const readme = path.join(template, 'README.md');
  fs.writeFileSync(
    path.join(stage, 'README.md'),
    fs.existsSync(readme) ? fs.readFileSync(readme) : `# ${pkg.name}\n\n${pkg.description}\n\nSee [facegan-native](https://www.npmjs.com/package/facegan-native).\n`,
  );
  binaryPackages.push(pkg.name);
  packed.push(npmPack(stage));
}

// 2. The weights package.
const weightsTemplate = path.join(root, 'npm', 'weights-progan-celeba128');
const weightsPkg = readJson(path.join(weightsTemplate, 'package.json'));
{
  const stage = path.join(stageDir, 'weights-progan-celeba128');
  fs.mkdirSync(stage, { recursive: true });
  writeJson(path.join(stage, 'package.json'), weightsPkg);
  fs.copyFileSync(path.join(root, 'weights', 'progan-celeba128.safetensors'), path.join(stage, 'progan-celeba128.safetensors'));
  fs.copyFileSync(path.join(root, 'weights', 'README.md'), path.join(stage, 'README.md'));
  packed.push(npmPack(stage));
}

// 3. The main package: the TypeScript compiled without source maps (they would point at lib/,
// which is not shipped), the files of package.json "files", the completed manifest.
{
  const stage = path.join(stageDir, 'facegan-native');
  fs.mkdirSync(stage, { recursive: true });
  const tsc = path.join(path.dirname(require.resolve('typescript/package.json')), readJson(require.resolve('typescript/package.json')).bin.tsc);
  run(process.execPath, [tsc, '-p', 'tsconfig.json', '--outDir', path.join(stage, 'dist'), '--sourceMap', 'false', '--declarationMap', 'false']);
  for (const entry of ['native', 'CMakeLists.txt', 'scripts/build-native.mjs', 'docs', 'README.md', 'LICENSE']) {
    fs.cpSync(path.join(root, entry), path.join(stage, entry), { recursive: true });
  }
  fs.chmodSync(path.join(stage, 'dist', 'cli.js'), 0o755);
  const platforms = fs
    .readdirSync(path.join(root, 'npm'))
    .filter((d) => d !== 'weights-progan-celeba128' && fs.existsSync(path.join(root, 'npm', d, 'package.json')))
    .map((d) => readJson(path.join(root, 'npm', d, 'package.json')).name)
    .sort();
  const pkg = { ...rootPkg };
  delete pkg.devDependencies;
  pkg.scripts = Object.fromEntries(Object.entries(rootPkg.scripts).filter(([k]) => k === 'build:native'));
  pkg.dependencies = { ...rootPkg.dependencies, [weightsPkg.name]: `^${weightsPkg.version}` };
  pkg.optionalDependencies = Object.fromEntries(platforms.map((n) => [n, rootPkg.version]));
  writeJson(path.join(stage, 'package.json'), pkg);
  packed.push(npmPack(stage));
}

console.log('pack:local: done');
for (const { file, info } of packed) console.log(`  ${path.relative(root, file)}  ${(info.size / 1e6).toFixed(2)} MB`);
