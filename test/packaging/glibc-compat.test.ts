/**
 * scripts/glibc-compat.mjs + scripts/check-glibc.mjs on a small addon (test/packaging/fixtures/
 * glibc-probe.cc): linked the ordinary way it needs today's GLIBC_ / GLIBCXX_ versions and the
 * check fails; linked as pack:local links the real addon (glibc 2.17 stubs, static libstdc++ and
 * libgcc, the compat object) the check passes, and the addon still works — a C++ exception
 * unwinds (the _dl_find_object replacement), random_device, stat, log and threads run.
 * Linux with glibc and a C++ compiler only.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);
const glibc = process.platform === 'linux' && !!(process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime;
const cxx = process.env.CXX || 'g++';
const haveCxx = spawnSync(cxx, ['--version']).status === 0;

describe.runIf(glibc && haveCxx)('glibc 2.17 baseline link', () => {
  let dir: string;
  let compat: string;
  const src = path.join(repo, 'test', 'packaging', 'fixtures', 'glibc-probe.cc');
  const include = require('node-api-headers').include_dir as string;
  const check = (file: string) => spawnSync(process.execPath, [path.join(repo, 'scripts', 'check-glibc.mjs'), file, '--baseline', '2.17'], { encoding: 'utf8' });
  const link = (out: string, extra: string[]) =>
    execFileSync(cxx, ['-O2', '-fPIC', '-shared', '-std=c++17', `-I${include}`, src, '-o', out, ...extra], { encoding: 'utf8' });

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-glibc-'));
    compat = path.join(dir, 'compat');
    execFileSync(process.execPath, [path.join(repo, 'scripts', 'glibc-compat.mjs'), compat, '--baseline', '2.17'], { encoding: 'utf8' });
  }, 120_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('linked the ordinary way, the check fails and names what is too new', () => {
    const plain = path.join(dir, 'plain.node');
    link(plain, []);
    const r = check(plain);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/needs GLIBCXX_3\.4\.\d+: libstdc\+\+ \/ libgcc must be linked statically/);
    expect(r.stderr).toMatch(/needs the shared library libstdc\+\+\.so\.6/);
    expect(r.stderr).toMatch(/FAILED, \d+ problem\(s\) against glibc 2\.17/);
  }, 120_000);

  it('linked against the stubs, the check passes and the addon works', () => {
    const portable = path.join(dir, 'portable.node');
    link(portable, [
      '-static-libstdc++',
      '-static-libgcc',
      '-Wl,--exclude-libs,ALL',
      `-L${compat}`,
      path.join(compat, 'glibc-compat.o'),
      `-Wl,--version-script=${path.join(compat, 'exports.map')}`,
    ]);
    const r = check(portable);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/OK for glibc >= 2\.17 \(newest needed: GLIBC_2\.(1[0-7]|[2-9](\.\d+)?)\b/);
    // Only the N-API entry point is exported.
    const exported = execFileSync('objdump', ['-T', portable], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => /\s(g|w)\s.*\.text/.test(l) && !/\*UND\*/.test(l))
      .map((l) => l.trim().split(/\s+/).at(-1));
    expect(exported).toContain('napi_register_module_v1');
    for (const name of exported) expect(['napi_register_module_v1', 'node_api_module_get_api_version_v1']).toContain(name);
    const probe = require(portable) as { run(): string };
    expect(probe.run()).toBe('caught: thrown at depth 0 stat-ok log-ok thread-ok');
  }, 120_000);

  it('the check refuses a symbol version newer than the baseline', () => {
    // The same portable binary against an even older baseline than it was linked for.
    const r = check(path.join(dir, 'portable.node'));
    expect(r.status).toBe(0);
    const strict = spawnSync(process.execPath, [path.join(repo, 'scripts', 'check-glibc.mjs'), path.join(dir, 'portable.node'), '--baseline', '2.3'], { encoding: 'utf8' });
    expect(strict.status).toBe(1);
    expect(strict.stderr).toMatch(/needs GLIBC_2\.\d+ \(newer than the baseline glibc 2\.3\)/);
  });
});
