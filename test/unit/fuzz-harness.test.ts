/**
 * The fuzz harness (fuzz/run.mjs) catches what it is there to catch: planted hang, crash,
 * untyped error and memory blow-up in its workers are reported as such, a failing mutant leaves
 * its reproducer, and the same seed gives the same mutants. Uses the built library (dist/).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain JS module without types
import { mutantSeed, mutate, rng } from '../../fuzz/mutate.mjs';
import { haveFixtures } from '../helpers/fixtures.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const haveDist = fs.existsSync(path.join(root, 'dist', 'index.js'));

describe.skipIf(!haveDist)('fuzz harness', () => {
  it('self-test: the planted failures are caught and a reproducer is written', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-fuzz-test-'));
    try {
      const r = spawnSync(process.execPath, ['fuzz/run.mjs', '--self-test', '--count', '40', '--timeout-ms', '4000', '--workers', '2', '--out', out], {
        cwd: root, encoding: 'utf8', env: { ...process.env, CI: haveFixtures ? process.env.CI : 'false' },
      });
      expect(r.stdout).toMatch(/planted failures all caught, reproducer written/);
      expect(r.status).toBe(0);
      const files = fs.readdirSync(out);
      expect(files.some((f) => f.endsWith('-untyped.json'))).toBe(true);
      const report = JSON.parse(fs.readFileSync(path.join(out, files.find((f) => f.endsWith('.json'))!), 'utf8')) as { rerun: string };
      expect(report.rerun).toMatch(/--seed 13 --only 0/);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it('mutants are a function of (seed, index)', () => {
    const base = { format: 'safetensors', bytes: fs.readFileSync(path.join(root, 'test', 'fixtures', 'progan', 'progan-tfjs-outputs.safetensors')) };
    for (let i = 0; i < 20; i++) {
      const a = mutate(base, rng(mutantSeed(7, i))) as { bytes: Buffer; what: string };
      const b = mutate(base, rng(mutantSeed(7, i))) as { bytes: Buffer; what: string };
      expect(a.what).toBe(b.what);
      expect(a.bytes.equals(b.bytes)).toBe(true);
    }
    expect(mutantSeed(7, 1)).not.toBe(mutantSeed(7, 2));
  });

  it('a failing run exits 1', () => {
    // --timeout-ms 1: every mutant "hangs"
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-fuzz-test-'));
    try {
      let status = 0;
      try {
        execFileSync(process.execPath, ['fuzz/run.mjs', '--count', '2', '--workers', '1', '--timeout-ms', '1', '--formats', 'tfjs', '--out', out, '--quiet'], { cwd: root, stdio: 'pipe', env: { ...process.env, CI: 'false' } });
      } catch (err) {
        status = (err as { status: number }).status;
      }
      expect(status).toBe(1);
      expect(fs.readdirSync(out).some((f) => f.endsWith('-hang.json'))).toBe(true);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
