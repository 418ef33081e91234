/** The command line, run in-process through main(). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { main } from '../../lib/cli.js';
import { loadGenerator } from '../../lib/index.js';
import { describeFixtures, fixturePath } from '../helpers/fixtures.js';

describeFixtures('facegan CLI', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-cli-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function quiet(): { out: string[]; err: string[]; restore: () => void } {
    const out: string[] = [];
    const err: string[] = [];
    const a = vi.spyOn(console, 'log').mockImplementation((...m) => void out.push(m.join(' ')));
    const b = vi.spyOn(console, 'error').mockImplementation((...m) => void err.push(m.join(' ')));
    return { out, err, restore: () => (a.mockRestore(), b.mockRestore()) };
  }

  it('generates seeds to PNG files equal to the API output', async () => {
    const io = quiet();
    try {
      const code = await main(['generate', '--model', fixturePath('tiny32.pkl'), '--seeds', '0-1,42', '--psi', '0.7', '--outdir', dir]);
      expect(code).toBe(0);
    } finally {
      io.restore();
    }
    expect(fs.readdirSync(dir).sort()).toEqual(['seed0000.png', 'seed0001.png', 'seed0042.png']);
    const gen = await loadGenerator(fixturePath('tiny32.pkl'));
    const [want] = await gen.generate({ seed: 42, psi: 0.7 });
    gen.dispose();
    const raw = await sharp(path.join(dir, 'seed0042.png')).raw().toBuffer();
    expect(raw.equals(Buffer.from(want.data))).toBe(true);
  });

  it('converts a checkpoint and reports its info', async () => {
    const dst = path.join(dir, 'tiny32.safetensors');
    const io = quiet();
    try {
      expect(await main(['convert', fixturePath('tiny32.tf.pkl'), dst])).toBe(0);
      expect(await main(['info', dst])).toBe(0);
      expect(JSON.parse(io.out.at(-1)!)).toMatchObject({ arch: 'stylegan2', resolution: 32, zDim: 64 });
    } finally {
      io.restore();
    }
  });

  it('exits 1 with the error code on bad input', async () => {
    const io = quiet();
    try {
      expect(await main(['generate', '--model', fixturePath('tiny32.pkl'), '--seed', 'x'])).toBe(1);
      expect(io.err.at(-1)).toMatch(/ERR_INVALID_OPTION.*--seed/);
      expect(await main(['generate', '--model', '/nope.pkl', '--seed', '1'])).toBe(1);
      expect(io.err.at(-1)).toMatch(/ERR_FILE_NOT_FOUND/);
      expect(await main(['generate', '--model', fixturePath('cond32.pkl'), '--seed', '1'])).toBe(1);
      expect(io.err.at(-1)).toMatch(/classIndex/);
      expect(await main(['frobnicate'])).toBe(1);
      expect(io.err.at(-1)).toMatch(/Unknown command/);
      expect(await main(['generate', '--bogus'])).toBe(1);
    } finally {
      io.restore();
    }
  });
});
