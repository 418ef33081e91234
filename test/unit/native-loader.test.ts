/**
 * lib/native.ts: the load order of the addon and the one message when nothing loads (fake
 * environments: `load` stands for node-gyp-build(dir)), and node-gyp-build itself on a local build
 * and on a package in the prebuildify layout.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaceganError } from '../../lib/errors.js';
import { currentEnvironment, loadNative, type NativeAddon, type NativeEnvironment } from '../../lib/native.js';

function fakeAddon(name: string, backends: string[] = ['cpu'], unavailable = ''): NativeAddon & { name: string } {
  return {
    name,
    createGenerator: async () => {
      throw new Error('not used');
    },
    availableBackends: () => ({ backends, unavailable }),
    numpyRandn: (_seed: number, count: number) => new Float64Array(count),
    builtWithCuda: backends.includes('cuda'),
  };
}

let root: string;
let rootWithBuild: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-loader-'));
  rootWithBuild = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-loader-'));
  fs.mkdirSync(path.join(rootWithBuild, 'build', 'Release'), { recursive: true });
  fs.writeFileSync(path.join(rootWithBuild, 'build', 'Release', 'facegan.node'), '');
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(rootWithBuild, { recursive: true, force: true });
});

/** Where a fake environment has a package installed. */
const dirOf = (name: string) => path.join('/consumer/node_modules', name);

/**
 * An environment where `modules` maps a package name (installed in dirOf(name)) or a directory
 * (the local build's) to what loading that directory gives: an addon, or an Error to throw.
 */
function env(modules: Record<string, unknown>, over: Partial<NativeEnvironment> = {}): NativeEnvironment & { loaded: string[] } {
  const byDir = new Map(Object.entries(modules).map(([k, v]) => [k.startsWith('@') ? dirOf(k) : k, v]));
  const loaded: string[] = [];
  return {
    platform: 'linux',
    arch: 'x64',
    libc: 'glibc',
    nvidiaDriver: false,
    root,
    packageDir: (name) => (name in modules ? dirOf(name) : undefined),
    load: (dir) => {
      loaded.push(dir);
      const m = byDir.get(dir);
      if (m instanceof Error) throw m;
      if (m === undefined) throw new Error(`No native build was found for platform=linux arch=x64\n    loaded from: ${dir}\n`);
      return m;
    },
    loaded,
    ...over,
  };
}

const CPU = '@facegan-native/linux-x64';
const CUDA = '@facegan-native/linux-x64-cuda';

describe('loadNative', () => {
  it('takes a local build first (node-gyp-build on the package directory)', () => {
    const e = env({ [rootWithBuild]: fakeAddon('local'), [CPU]: fakeAddon('cpu') }, { root: rootWithBuild });
    const { addon, attempts } = loadNative(e);
    expect((addon as unknown as { name: string }).name).toBe('local');
    expect(attempts).toEqual([{ candidate: 'local build', result: 'loaded', detail: rootWithBuild }]);
    expect(e.loaded).toEqual([rootWithBuild]);
  });

  it('without a driver skips the CUDA package without loading it and takes the CPU package', () => {
    const e = env({ [CUDA]: fakeAddon('cuda', ['cuda', 'cpu']), [CPU]: fakeAddon('cpu') });
    const { addon, attempts } = loadNative(e);
    expect((addon as unknown as { name: string }).name).toBe('cpu');
    expect(e.loaded).toEqual([dirOf(CPU)]);
    expect(attempts.map((a) => [a.candidate, a.result])).toEqual([
      ['local build', 'skipped'],
      [CUDA, 'skipped'],
      [CPU, 'loaded'],
    ]);
    expect(attempts[1].detail).toBe('no NVIDIA driver found');
  });

  it('with a driver takes the CUDA package when its CUDA backend is usable', () => {
    const e = env({ [CUDA]: fakeAddon('cuda', ['cuda', 'cpu']), [CPU]: fakeAddon('cpu') }, { nvidiaDriver: true });
    expect((loadNative(e).addon as unknown as { name: string }).name).toBe('cuda');
    expect(e.loaded).toEqual([dirOf(CUDA)]);
  });

  it('falls back to the CPU package when the driver is there but CUDA is not usable', () => {
    const e = env({ [CUDA]: fakeAddon('cuda', ['cpu'], 'cuda: driver too old'), [CPU]: fakeAddon('cpu') }, { nvidiaDriver: true });
    const { addon, attempts } = loadNative(e);
    expect((addon as unknown as { name: string }).name).toBe('cpu');
    expect(attempts[1]).toEqual({ candidate: CUDA, result: 'skipped', detail: 'loaded, but CUDA is not usable: cuda: driver too old' });
  });

  it('keeps the CUDA package (its CPU engine) when it is the only one installed', () => {
    const e = env({ [CUDA]: fakeAddon('cuda', ['cpu'], 'no device') }, { nvidiaDriver: true });
    expect((loadNative(e).addon as unknown as { name: string }).name).toBe('cuda');
  });

  it('a CUDA package that fails to load is listed and the CPU package is used', () => {
    const e = env({ [CUDA]: new Error('libcuda.so.1: cannot open shared object file\nmore'), [CPU]: fakeAddon('cpu') }, { nvidiaDriver: true });
    const { addon, attempts } = loadNative(e);
    expect((addon as unknown as { name: string }).name).toBe('cpu');
    expect(attempts[1]).toEqual({ candidate: CUDA, result: 'failed', detail: 'libcuda.so.1: cannot open shared object file' });
  });

  it('rejects something that loads but is not the addon', () => {
    const e = env({ [CPU]: { hello: 1 } });
    expect(() => loadNative(e)).toThrow(/@facegan-native\/linux-x64: failed: it loaded but is not a facegan addon/);
  });

  it('when nothing loads: one ERR_NATIVE message with every attempt and what a consumer can do', () => {
    const e = env({ [CPU]: new Error('/x/facegan.node: invalid ELF header') });
    let err: unknown;
    try {
      loadNative(e);
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(FaceganError);
    expect((err as FaceganError).code).toBe('ERR_NATIVE');
    const lines = (err as Error).message.split('\n');
    expect(lines[0]).toMatch(/^facegan-native could not load its native addon on linux-x64 \(glibc\), Node \d+\.\d+\.\d+\. Tried, in order:$/);
    expect(lines[1]).toBe(`  1. local build: ${path.join(root, 'build', 'Release', 'facegan.node')} does not exist`);
    expect(lines[2]).toBe(`  2. ${CUDA}: not installed`);
    expect(lines[3]).toBe(`  3. ${CPU}: failed: /x/facegan.node: invalid ELF header`);
    expect(lines[4]).toBe('To fix it:');
    expect(lines[5]).toMatch(/Reinstall so that npm installs @facegan-native\/linux-x64: `npm install facegan-native` without --omit=optional/);
    expect(lines[6]).toMatch(/`npm install --save-dev cmake-js` then `npx facegan build-native`/);
    expect((err as Error).message).not.toMatch(/npm run build/);
  });

  it('on a platform without binaries says so and names those that have them', () => {
    const e = env({}, { platform: 'linux', arch: 'riscv64', libc: 'musl' });
    expect(() => loadNative(e)).toThrow(
      /on linux-riscv64-musl, Node[\s\S]*@facegan-native\/linux-riscv64-musl: not installed[\s\S]*No prebuilt binary is published for linux-riscv64-musl \(there are for linux-x64, linux-x64-cuda, linux-arm64, darwin-arm64, darwin-x64, win32-x64\)/,
    );
  });
});

describe('node-gyp-build as the loader (the default environment)', () => {
  const tag = `${process.platform}-${process.arch}`;
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-ngb-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** A package directory; `prebuild` is written as prebuilds/<this platform>/facegan.node when given. */
  function pkgDir(name: string, prebuild?: string): string {
    const dir = path.join(tmp, 'node_modules', name);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '0.0.0' }));
    if (prebuild !== undefined) {
      fs.mkdirSync(path.join(dir, 'prebuilds', tag), { recursive: true });
      fs.writeFileSync(path.join(dir, 'prebuilds', tag, 'facegan.node'), prebuild);
    }
    return dir;
  }

  it('loads the prebuild of a platform package from prebuilds/<platform>-<arch>/, and reports what failed', () => {
    const cpu = `@facegan-native/${tag}`;
    const dir = pkgDir(cpu, 'this is not a shared library\n');
    const e: NativeEnvironment = { ...currentEnvironment(), libc: 'glibc', nvidiaDriver: false, root: path.join(tmp, 'no-build'), packageDir: (n) => (n === cpu ? dir : undefined) };
    expect(() => loadNative(e)).toThrow(new RegExp(`  3\\. @facegan-native/${tag}: failed: .*${path.join(dir, 'prebuilds', tag, 'facegan.node').replace(/[.+]/g, '\\$&')}`));
  });

  it('an installed package without a prebuild for this machine: node-gyp-build says what it looked for', () => {
    const cpu = `@facegan-native/${tag}`;
    const dir = pkgDir(`${cpu}-empty`);
    const e: NativeEnvironment = { ...currentEnvironment(), nvidiaDriver: false, root: path.join(tmp, 'no-build'), packageDir: (n) => (n === cpu ? dir : undefined) };
    expect(() => loadNative(e)).toThrow(new RegExp(`@facegan-native/${tag}: failed: No native build was found for platform=${process.platform} arch=${process.arch} runtime=node`));
  });

  it('a local build is build/Release/*.node of the package directory', () => {
    const root = pkgDir('facegan-native');
    fs.mkdirSync(path.join(root, 'build', 'Release'), { recursive: true });
    const local = path.join(root, 'build', 'Release', 'facegan.node');
    fs.writeFileSync(local, 'not a shared library either\n');
    const e: NativeEnvironment = { ...currentEnvironment(), nvidiaDriver: false, root, packageDir: () => undefined };
    expect(() => loadNative(e)).toThrow(new RegExp(`  1\\. local build: failed: .*${local.replace(/[.+]/g, '\\$&')}`));
  });
});
