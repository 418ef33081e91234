/**
 * The CLI's help, version, -o with several seeds, images written as they are ready, the progress
 * line on a terminal — run as a user runs it: `node dist/cli.js` in a shell (built by `npm run
 * build:ts`, which CI does), plus main() in-process where a fake TTY is needed.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../lib/cli.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(repo, 'dist', 'cli.js');
const version = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')).version as string;
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-cli-usage-'));
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: run npm run build:ts first`);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { cwd: dir, encoding: 'utf8', timeout: 120_000 });

describe('facegan CLI usage', () => {
  it('--version and -v print the package version', () => {
    for (const flag of ['--version', '-v']) {
      const r = run(flag);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`${version}\n`);
    }
  });

  it('<command> --help prints that command\'s usage and exits 0 (and does no work)', () => {
    for (const [command, words] of [
      ['generate', /facegan generate .*--seeds LIST[\s\S]*\{seed\}/],
      ['convert', /facegan convert SRC DST\.safetensors/],
      ['info', /facegan info \[MODEL\]/],
      ['pull', /facegan pull ID[\s\S]*licence/],
      ['export-onnx', /facegan export-onnx MODEL OUT\.onnx/],
      ['serve', /facegan serve .*--port/],
      ['backends', /facegan backends/],
      ['build-native', /facegan build-native[\s\S]*cmake-js/],
    ] as const) {
      for (const flag of ['--help', '-h']) {
        const r = run(command, flag);
        expect(r.status, `${command} ${flag}: ${r.stderr}`).toBe(0);
        expect(r.stdout).toMatch(/^Usage: /);
        expect(r.stdout).toMatch(words);
        expect(r.stderr).toBe('');
      }
    }
    expect(run('help', 'generate').stdout).toMatch(/^Usage: facegan generate/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('--help lists every command; no arguments prints it to stderr with status 1', () => {
    const r = run('--help');
    expect(r.status).toBe(0);
    for (const c of ['generate', 'convert', 'info', 'pull', 'export-onnx', 'serve', 'backends', 'build-native']) expect(r.stdout).toContain(`facegan ${c}`);
    const none = run();
    expect(none.status).toBe(1);
    expect(none.stderr).toBe(`${r.stdout}`);
  });

  it('-o with several seeds is refused before any work, unless it has a {seed} pattern', () => {
    const r = run('generate', '--seeds', '1-3', '-o', 'x.png');
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      "facegan: [ERR_INVALID_OPTION] -o 'x.png' names one file, but 3 seeds were asked for: put {seed} in the name (e.g. -o face-{seed}.png) or use --outdir DIR\n",
    );
    expect(run('generate', '--seed', '1', '--seeds', '2').stderr).toMatch(/--seed N or --seeds LIST, not both/);
    expect(run('generate', '--seed', '1', '-o', 'a.png', '--outdir', 'd').stderr).toMatch(/-o FILE or --outdir DIR, not both/);
    expect(fs.readdirSync(dir)).toEqual([]);

    const ok = run('generate', '--seeds', '1-2,7', '-o', 'out/face-{seed}.png');
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout.split('\n').filter(Boolean)).toEqual([
      'out/face-1.png (128×128, seed 1, cpu)',
      'out/face-2.png (128×128, seed 2, cpu)',
      'out/face-7.png (128×128, seed 7, cpu)',
    ]);
    expect(fs.readdirSync(path.join(dir, 'out')).sort()).toEqual(['face-1.png', 'face-2.png', 'face-7.png']);
    // Not a terminal: no progress line on stderr.
    expect(ok.stderr).toBe('');
  });

  it('writes each image as soon as it is ready, with a progress line on a TTY', async () => {
    const out = path.join(dir, 'tty');
    const lines: string[] = [];
    const progress: string[] = [];
    const stderr = process.stderr as NodeJS.WriteStream & { isTTY?: boolean };
    const wasTTY = stderr.isTTY;
    stderr.isTTY = true;
    const w = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      progress.push(String(chunk));
      return true;
    });
    // At each file line, the files that exist: one more each time (not all at the end).
    const seen: number[] = [];
    const l = vi.spyOn(console, 'log').mockImplementation((m: string) => {
      lines.push(m);
      seen.push(fs.readdirSync(out).length);
    });
    try {
      expect(await main(['generate', '--seeds', '3-5', '--outdir', out, '--device', 'cpu'])).toBe(0);
    } finally {
      w.mockRestore();
      l.mockRestore();
      stderr.isTTY = wasTTY;
    }
    expect(lines).toEqual([
      `${path.join(out, 'seed0003.png')} (128×128, seed 3, cpu)`,
      `${path.join(out, 'seed0004.png')} (128×128, seed 4, cpu)`,
      `${path.join(out, 'seed0005.png')} (128×128, seed 5, cpu)`,
    ]);
    expect(seen).toEqual([1, 2, 3]);
    const text = progress.join('');
    expect(text).toContain('facegan: 0/3 images, generating seed 3…');
    expect(text).toContain('facegan: 2/3 images, generating seed 5…');
    expect(text.endsWith('\r\x1b[K')).toBe(true); // the progress line is cleared at the end
  });
});
