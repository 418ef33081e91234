/**
 * The tarballs of `npm run pack:local` (build/pack/*.tgz), installed the way a user installs them:
 * into an empty project, with PATH stripped of every compiler and of cmake / nvcc / make / ninja,
 * and used from a shell — ESM import, the CLI through npx, CommonJS require, a TypeScript consumer.
 * Then the main tarball with a deliberately broken platform binary: the install succeeds and the
 * first call explains what was tried and what to do. And the glibc symbol-version check.
 *
 * Needs `npm run pack:local` first (.ci/run does it). Without the tarballs the suite FAILS under
 * CI=true and is skipped with a warning otherwise. The @facegan-native scope is pointed at an
 * unreachable registry in the test projects, so that nothing of that name comes from the network
 * (the packages of other platforms are then skipped, as npm skips any optional dependency it cannot
 * fetch); sharp and its own binaries come from the npm registry as for any user.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from '../../lib/index.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const packDir = path.join(repo, 'build', 'pack');
const tarballs = fs.existsSync(packDir) ? fs.readdirSync(packDir).filter((f) => f.endsWith('.tgz')) : [];
const tag = `${process.platform}-${process.arch}`;
const find = (re: RegExp): string | undefined => {
  const f = tarballs.find((t) => re.test(t));
  return f && path.join(packDir, f);
};
const mainTgz = find(/^facegan-native-\d+\.\d+\.\d+\.tgz$/);
const platformTgz = find(new RegExp(`^facegan-native-${tag}-\\d+\\.\\d+\\.\\d+\\.tgz$`));
const weightsTgz = find(/^facegan-native-weights-progan-celeba128-.*\.tgz$/);
const haveTarballs = !!(mainTgz && platformTgz && weightsTgz);

if (!haveTarballs) {
  const why = `build/pack has no main / ${tag} / weights tarballs (run \`npm run pack:local\`)`;
  if (process.env.CI === 'true') {
    describe('packed install', () => {
      it('has the tarballs of npm run pack:local', () => {
        throw new Error(why);
      });
    });
  } else {
    console.warn(`\n*** packed-install tests SKIPPED: ${why} ***\n`);
  }
}

/** A PATH with everything of the current one except compilers and build tools. */
function strippedPath(dir: string): string {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  const banned = /^(cc|c\+\+|gcc|g\+\+|cpp|c89|c99|clang|clang\+\+|cmake|ctest|nvcc|make|gmake|ninja|ld|ld\.\w+)(-[\d.]+)?$|-(gcc|g\+\+|cc|c\+\+|ld)(-[\d.]+)?$/;
  for (const d of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!d || !fs.existsSync(d)) continue;
    for (const name of fs.readdirSync(d)) {
      if (banned.test(name) || fs.existsSync(path.join(bin, name))) continue;
      try {
        fs.symlinkSync(path.join(d, name), path.join(bin, name));
      } catch {
        // unreadable entries: leave out
      }
    }
  }
  return bin;
}

interface Project {
  dir: string;
  env: NodeJS.ProcessEnv;
  sh: (cmd: string) => SpawnSyncReturns<string>;
}

function project(root: string, name: string, env: NodeJS.ProcessEnv): Project {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, version: '1.0.0', private: true }, null, 2));
  // Nothing named @facegan-native/* from the network (see the header).
  fs.writeFileSync(path.join(dir, '.npmrc'), '@facegan-native:registry=http://127.0.0.1:9/\nfetch-retries=0\n');
  const sh = (cmd: string) => spawnSync('sh', ['-c', cmd], { cwd: dir, env, encoding: 'utf8', timeout: 300_000 });
  return { dir, env, sh };
}

/** The addon files of an installed or staged binary package: the prebuildify layout, prebuilds/<platform>-<arch>/*.node. */
const prebuildsOf = (pkgDir: string): string[] => {
  const dir = path.join(pkgDir, 'prebuilds', tag);
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.node')).map((f) => path.join(dir, f)) : [];
};

const show = (r: SpawnSyncReturns<string>) => `exit ${r.status}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

describe.runIf(haveTarballs)('packed install', () => {
  let tmp: string;
  let env: NodeJS.ProcessEnv;
  let good: Project;
  let broken: Project;

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-packed-'));
    const bin = strippedPath(tmp);
    // The user's environment (proxies, HOME, registry settings), minus what `npm test` put there
    // (npm_* would point the inner npm at this repository) and minus compiler settings.
    const base = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !/^(npm_|CC$|CXX$|CUDACXX$|CMAKE_|FACEGAN_|VITEST|NODE_OPTIONS$)/i.test(k)),
    );
    env = {
      ...base,
      PATH: bin,
      npm_config_cache: process.env.npm_config_cache ?? path.join(os.homedir(), '.npm'),
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_update_notifier: 'false',
      FACEGAN_HOME: path.join(tmp, 'cache'),
      ONNXRUNTIME_NODE_INSTALL: 'skip',
    };
    good = project(tmp, 'good', env);
    const r = good.sh(`npm install ${mainTgz} ${platformTgz} ${weightsTgz}`);
    expect(r.status, show(r)).toBe(0);

    // The platform package with a binary that cannot load.
    const stage = path.join(tmp, 'broken-stage');
    fs.mkdirSync(stage);
    const x = spawnSync('tar', ['xzf', platformTgz!, '-C', stage], { encoding: 'utf8' });
    expect(x.status, x.stderr).toBe(0);
    const addons = prebuildsOf(path.join(stage, 'package'));
    expect(addons.length).toBe(1);
    for (const f of addons) fs.writeFileSync(f, 'this is not a shared library\n');
    const p = spawnSync('npm', ['pack', '--pack-destination', tmp], { cwd: path.join(stage, 'package'), env, encoding: 'utf8' });
    expect(p.status, p.stderr).toBe(0);
    const brokenTgz = path.join(tmp, fs.readdirSync(tmp).find((f) => f.endsWith('.tgz'))!);
    broken = project(tmp, 'broken', env);
    const rb = broken.sh(`npm install ${mainTgz} ${brokenTgz} ${weightsTgz}`);
    expect(rb.status, `the install must not fail because a binary does not load\n${show(rb)}`).toBe(0);
  }, 600_000);

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('runs with no compiler or cmake on the PATH', () => {
    for (const tool of ['cc', 'gcc', 'g++', 'c++', 'cmake', 'nvcc']) expect(good.sh(`command -v ${tool}`).status, tool).not.toBe(0);
    expect(good.sh('command -v node && command -v npm').status).toBe(0);
  });

  it('installed the platform package and the weights package, and built nothing', () => {
    const nm = path.join(good.dir, 'node_modules');
    // Made by prebuildify: prebuilds/<platform>-<arch>/facegan[.glibc].node, found by node-gyp-build.
    const addons = prebuildsOf(path.join(nm, '@facegan-native', tag));
    expect(addons.map((f) => path.basename(f))).toEqual([process.platform === 'linux' ? 'facegan.glibc.node' : 'facegan.node']);
    expect(fs.existsSync(path.join(nm, 'node-gyp-build', 'package.json'))).toBe(true);
    expect(fs.existsSync(path.join(nm, '@facegan-native', 'weights-progan-celeba128', 'progan-celeba128.safetensors'))).toBe(true);
    expect(fs.existsSync(path.join(nm, 'facegan-native', 'build'))).toBe(false);
    // No maintainer tools or source maps in the main package.
    const files = spawnSync('find', ['.', '-type', 'f'], { cwd: path.join(nm, 'facegan-native'), encoding: 'utf8' }).stdout.split('\n');
    expect(files.filter((f) => /\.map$|native\/tools\/|scripts\/(?!build-native\.mjs)|weights\//.test(f))).toEqual([]);
    expect(files).toContain('./LICENSE');
  });

  it('import { generate, saveImage } makes the same face as the library in this repository', async () => {
    const r = good.sh(
      `node --input-type=module -e "import { generate, saveImage } from 'facegan-native'; ` +
        `const f = await generate({ seed: 1 }); await saveImage(f, 'esm.png'); console.log(JSON.stringify([f.width, f.height, f.channels]))"`,
    );
    expect(r.status, show(r)).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual([128, 128, 3]);
    const want = await generate({ seed: 1 });
    const got = await sharp(path.join(good.dir, 'esm.png')).raw().toBuffer();
    expect(got.equals(Buffer.from(want.data))).toBe(true);
  });

  it('npx facegan generate --seed 1 -o x.png writes that face', async () => {
    const r = good.sh('npx --no-install facegan generate --seed 1 -o x.png');
    expect(r.status, show(r)).toBe(0);
    expect(r.stdout).toMatch(/x\.png/);
    const a = await sharp(path.join(good.dir, 'x.png')).raw().toBuffer();
    const b = await sharp(path.join(good.dir, 'esm.png')).raw().toBuffer();
    expect(a.equals(b)).toBe(true);
    const v = good.sh('npx --no-install facegan --version');
    expect(v.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')).version);
  });

  it('require() works from CommonJS on this Node, without an ExperimentalWarning', () => {
    const r = good.sh(`node -e "const { generate, FaceganError } = require('facegan-native'); generate({ seed: 2 }).then((f) => console.log(f.width, typeof FaceganError))"`);
    expect(r.status, show(r)).toBe(0);
    expect(r.stdout.trim()).toBe('128 function');
    expect(r.stderr).not.toMatch(/ExperimentalWarning/);
  });

  it('where Node cannot require() ES modules, require() fails with a clear "ESM only: use import" error', () => {
    // Node < 20.19 behaves as this flag makes Node 20.19+ behave.
    const r = good.sh(
      `node --no-experimental-require-module -e "try { require('facegan-native'); console.log('loaded?') } catch (e) { console.log(JSON.stringify([e.code, e.message])) }"`,
    );
    expect(r.status, show(r)).toBe(0);
    const [code, message] = JSON.parse(r.stdout.trim());
    expect(code).toBe('ERR_REQUIRE_ESM');
    expect(message).toMatch(/^facegan-native is an ES module \(ESM only\), and this Node \([\d.]+\) cannot require\(\) ES modules/);
    expect(message).toMatch(/await import\('facegan-native'\)/);
  });

  it('a TypeScript consumer type-checks (tsc --noEmit), and the types are not any', () => {
    fs.writeFileSync(
      path.join(good.dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          types: ['node'],
          typeRoots: [path.join(repo, 'node_modules', '@types')],
        },
        files: ['consumer.mts'],
      }),
    );
    fs.writeFileSync(
      path.join(good.dir, 'consumer.mts'),
      [
        "import { generate, saveImage, loadGenerator, FaceganError, type Image, type GeneratorInfo } from 'facegan-native';",
        'const face: Image = await generate({ seed: 1, psi: 1 });',
        'const w: number = face.width;',
        "await saveImage(face, 'ts.png');",
        "const gen = await loadGenerator('model.safetensors', { device: 'cpu' });",
        'const info: GeneratorInfo = gen.info;',
        "// @ts-expect-error seed is a number",
        "await generate({ seed: 'one' });",
        "// @ts-expect-error no such device",
        "await loadGenerator('m', { device: 'tpu' });",
        'export { w, info, FaceganError };',
      ].join('\n'),
    );
    const tsc = path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = good.sh(`node ${tsc} -p tsconfig.json`);
    expect(r.status, show(r)).toBe(0);
  });

  it('with a broken platform binary: import works, the first call explains what was tried and what to do', () => {
    const r = broken.sh(
      `node --input-type=module -e "import { generate, FaceganError } from 'facegan-native'; ` +
        `try { await generate({ seed: 1 }); console.log('generated?'); } ` +
        `catch (e) { console.log(JSON.stringify({ isFg: e instanceof FaceganError, code: e.code, message: e.message })); }"`,
    );
    expect(r.status, show(r)).toBe(0);
    const e = JSON.parse(r.stdout.trim());
    expect(e.isFg).toBe(true);
    expect(e.code).toBe('ERR_NATIVE');
    expect(e.message).toMatch(new RegExp(`could not load its native addon on ${tag}`));
    expect(e.message).toMatch(/1\. local build: .*does not exist/);
    expect(e.message).toMatch(new RegExp(`@facegan-native/${tag}: failed: .*prebuilds/${tag}/facegan[.\\w]*\\.node`));
    expect(e.message).toMatch(/npm install facegan-native/);
    expect(e.message).toMatch(/npm install --save-dev cmake-js.*npx facegan build-native/);
    expect(e.message).not.toMatch(/npm run build/);

    const cli = broken.sh('npx --no-install facegan generate --seed 1 -o y.png');
    expect(cli.status).toBe(1);
    expect(cli.stderr).toMatch(/ERR_NATIVE.*could not load its native addon/s);
    expect(fs.existsSync(path.join(broken.dir, 'y.png'))).toBe(false);
  });

  it('where no binary loads, the documented source build (cmake-js + npx facegan build-native) makes it work', async () => {
    // This one needs the compilers: the user's full PATH.
    const full = (cmd: string) =>
      spawnSync('sh', ['-c', cmd], { cwd: broken.dir, env: { ...env, PATH: process.env.PATH, FACEGAN_CUDA: '0' }, encoding: 'utf8', timeout: 600_000 });
    const i = full('npm install --save-dev cmake-js@^8');
    expect(i.status, show(i)).toBe(0);
    const b = full('npx --no-install facegan build-native');
    expect(b.status, show(b)).toBe(0);
    expect(b.stdout).toMatch(/facegan: built .*node_modules\/facegan-native\/build\/Release\/facegan\.node/);
    const r = broken.sh('npx --no-install facegan generate --seed 1 -o built.png');
    expect(r.status, show(r)).toBe(0);
    const a = await sharp(path.join(broken.dir, 'built.png')).raw().toBuffer();
    const want = await generate({ seed: 1 });
    expect(a.equals(Buffer.from(want.data))).toBe(true);
  }, 600_000);

  it.runIf(process.platform === 'linux')('the installed Linux binary passes the glibc symbol-version check; the developer build does not', () => {
    const check = path.join(repo, 'scripts', 'check-glibc.mjs');
    const [installed] = prebuildsOf(path.join(good.dir, 'node_modules', '@facegan-native', tag));
    const ok = spawnSync(process.execPath, [check, installed, '--baseline', '2.17'], { encoding: 'utf8' });
    expect(ok.status, show(ok)).toBe(0);
    expect(ok.stdout).toMatch(/OK for glibc >= 2\.17/);
    // The same check on a build linked the ordinary way (libstdc++ shared, today's glibc versions) fails.
    const dev = path.join(repo, 'build', 'Release', 'facegan.node');
    if (fs.existsSync(dev)) {
      const bad = spawnSync(process.execPath, [check, dev, '--baseline', '2.17'], { encoding: 'utf8' });
      expect(bad.status).toBe(1);
      expect(bad.stderr).toMatch(/libstdc\+\+|GLIBC_2\.(2[89]|3\d)/);
    }
  });
});
