/** The package manifests agree with each other and with the loader (no build needed). */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PREBUILT_PLATFORMS } from '../../lib/native.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (f: string) => JSON.parse(fs.readFileSync(path.join(repo, f), 'utf8'));
const root = read('package.json');
const platformDirs = fs.readdirSync(path.join(repo, 'npm')).filter((d) => d !== 'weights-progan-celeba128' && fs.existsSync(path.join(repo, 'npm', d, 'package.json')));

describe('package manifests', () => {
  it('the loader names exactly the platform packages in npm/', () => {
    expect([...platformDirs].sort()).toEqual([...PREBUILT_PLATFORMS].sort());
  });

  it.each(platformDirs)('npm/%s: name, version, os / cpu / libc, and only the addon', (dir) => {
    const p = read(`npm/${dir}/package.json`);
    const [platform, arch, variant] = dir.split('-');
    expect(p.name).toBe(`@facegan-native/${dir}`);
    expect(p.version).toBe(root.version);
    expect(p.os).toEqual([platform]);
    expect(p.cpu).toEqual([arch]);
    if (platform === 'linux') expect(p.libc).toEqual(['glibc']);
    else expect(p.libc).toBeUndefined();
    // The prebuildify layout (prebuilds/<platform>-<arch>/*.node), loaded with node-gyp-build(dir).
    expect(p.files).toEqual(['prebuilds']);
    expect(p.exports).toEqual({ './package.json': './package.json' });
    expect(p.license).toBe('MIT');
    expect(variant === undefined || variant === 'cuda').toBe(true);
  });

  it('the main package: ESM with a require condition, no install script, repository fields, no @facegan-native names of its own', () => {
    expect(root.type).toBe('module');
    expect(root.exports['.']).toEqual({ types: './dist/index.d.ts', import: './dist/index.js', require: './dist/require.cjs', default: './dist/index.js' });
    expect(root.scripts.install).toBeUndefined();
    expect(root.scripts.postinstall).toBeUndefined();
    expect(root.repository.url).toMatch(/^git\+https:\/\//);
    expect(root.homepage).toMatch(/^https:\/\//);
    expect(root.bugs.url).toMatch(/^https:\/\//);
    expect(fs.existsSync(path.join(repo, 'LICENSE'))).toBe(true);
    // Added only to the staged copy by scripts/pack-local.mjs, so a clone never asks the registry for them.
    const names = Object.keys({ ...root.dependencies, ...root.optionalDependencies, ...root.devDependencies });
    expect(names.filter((n) => n.startsWith('@facegan-native/'))).toEqual([]);
    expect(root.peerDependenciesMeta['cmake-js'].optional).toBe(true);
    expect(root.files).toEqual(expect.arrayContaining(['!native/tools', 'scripts/build-native.mjs']));
    expect(root.files.some((f: string) => f.includes('weights') || f.includes('.map'))).toBe(false);
  });

  it('binaries are made by prebuildify and loaded by node-gyp-build', () => {
    expect(root.dependencies['node-gyp-build']).toMatch(/^\^4\./);
    expect(root.devDependencies.prebuildify).toMatch(/^\^6\./);
    const pack = fs.readFileSync(path.join(repo, 'scripts', 'pack-local.mjs'), 'utf8');
    expect(pack).toMatch(/'--napi',\s*'--strip',/);
    expect(pack).toMatch(/prebuildify-node-gyp\.mjs/);
    expect(fs.statSync(path.join(repo, 'scripts', 'prebuildify-node-gyp.mjs')).mode & 0o111).not.toBe(0); // spawned directly
    const loader = fs.readFileSync(path.join(repo, 'lib', 'native.ts'), 'utf8');
    expect(loader).toMatch(/require\('node-gyp-build'\)/);
  });

  it('the weights package has its own version and only the model and its README', () => {
    const w = read('npm/weights-progan-celeba128/package.json');
    expect(w.name).toBe('@facegan-native/weights-progan-celeba128');
    expect(w.license).toBe('Apache-2.0');
    expect(w.files).toEqual(['progan-celeba128.safetensors', 'README.md']);
    expect(w.exports['./progan-celeba128.safetensors']).toBe('./progan-celeba128.safetensors');
  });
});
