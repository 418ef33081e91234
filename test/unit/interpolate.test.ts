/** Latent walks, style mixing and grids: the API, then the CLI through the real binary (dist/cli.js). */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MODEL, FaceganError, loadGenerator, type Generator, type Image } from '../../lib/index.js';
import { interpolateVectors, styleMixGrid, tileImages } from '../../lib/interpolate.js';
import { describeFixtures, fixturePath } from '../helpers/fixtures.js';

const DST = 'http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia';
const same = (a: Image, b: Image) => Buffer.from(a.data).equals(Buffer.from(b.data));
const meanAbsDiff = (a: Image, b: Image) => a.data.reduce((s, v, i) => s + Math.abs(v - b.data[i]), 0) / a.data.length;

async function code(p: Promise<unknown>): Promise<string | undefined> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(FaceganError);
  return (e as FaceganError).code;
}

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const bin = path.resolve('dist', 'cli.js');
  if (!fs.existsSync(path.resolve('dist', 'cli-media.js'))) throw new Error('dist/ is not built: run npm run build:ts first');
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('interpolation maths', () => {
  it('slerp keeps the norm of equal-norm ends; lerp is exact at the ends', () => {
    const a = [3, 0, 0];
    const b = [0, 3, 0];
    const out = new Float64Array(3);
    interpolateVectors(a, b, 0.5, 'slerp', out);
    expect(Math.hypot(...out)).toBeCloseTo(3, 12);
    interpolateVectors(a, b, 0.5, 'lerp', out);
    expect(Math.hypot(...out)).toBeCloseTo(3 / Math.SQRT2, 12);
    interpolateVectors([0.1, 0.7], [0.3, -0.2], 1, 'lerp', out);
    expect([out[0], out[1]]).toEqual([0.3, -0.2]);
    interpolateVectors([1, 0], [2, 0], 0.25, 'slerp', out); // parallel ends: lerp
    expect(out[0]).toBeCloseTo(1.25, 12);
  });

  it('tiles images row by row with blanks', () => {
    const px = (v: number): Image => ({ width: 2, height: 2, channels: 1, data: new Uint8Array(4).fill(v) });
    const g = tileImages([px(1), undefined, px(3)], 2);
    expect([g.width, g.height]).toEqual([4, 4]);
    expect(Array.from(g.data)).toEqual([1, 1, 24, 24, 1, 1, 24, 24, 3, 3, 24, 24, 3, 3, 24, 24]);
  });
});

describe('gen.interpolate (embedded ProGAN-128)', () => {
  let gen: Generator;
  beforeAll(async () => {
    gen = await loadGenerator(DEFAULT_MODEL, { device: 'cpu', batchSize: 3 });
  });
  afterAll(() => gen.dispose());

  it('walks in z from seed to seed: the ends are those faces, the middle is neither', async () => {
    const frames = await gen.interpolate({ from: 1, to: 2, steps: 5 });
    expect(frames.map((f) => [f.index, f.t])).toEqual([[0, 0], [1, 0.25], [2, 0.5], [3, 0.75], [4, 1]]);
    const [a] = await gen.generate({ seed: 1 });
    const [b] = await gen.generate({ seed: 2 });
    expect(same(frames[0], a)).toBe(true);
    expect(same(frames[4], b)).toBe(true);
    expect(meanAbsDiff(frames[2], a)).toBeGreaterThan(2);
    expect(meanAbsDiff(frames[2], b)).toBeGreaterThan(2);
    // Consecutive frames are closer to each other than the ends are.
    expect(meanAbsDiff(frames[1], frames[2])).toBeLessThan(meanAbsDiff(a, b));
    expect(frames[2].model).toBe('progan-celeba128');
    const lerp = await gen.interpolate({ from: 1, to: 2, steps: 5, method: 'lerp' });
    expect(same(lerp[2], frames[2])).toBe(false);
    expect(same(lerp[0], a)).toBe(true);
  });

  it('streams frames one engine batch at a time and checks its options', async () => {
    const sizes: number[] = [];
    for await (const batch of gen.interpolateFrames({ from: 3, to: 4, steps: 7 })) sizes.push(batch.length);
    expect(sizes).toEqual([3, 3, 1]);
    const z = Array.from(gen.zFromSeed(3));
    const fromLatent = await gen.interpolate({ from: z, to: 4, steps: 2 });
    expect(same(fromLatent[0], (await gen.generate({ seed: 3 }))[0])).toBe(true);
    expect(await code(gen.interpolate({ from: 1, to: 2, steps: 1 }))).toBe('ERR_INVALID_OPTION');
    expect(await code(gen.interpolate({ from: 1, to: 2, steps: 4, space: 'w' }))).toBe('ERR_INVALID_OPTION');
    expect(await code(gen.interpolate({ from: [1, 2], to: 2, steps: 4 }))).toBe('ERR_INVALID_OPTION');
    expect(await code(gen.interpolate({ from: 1, to: 2, steps: 4, method: 'cubic' as never }))).toBe('ERR_INVALID_OPTION');
    expect(await code(gen.interpolate({ from: -1, to: 2, steps: 4 }))).toBe('ERR_INVALID_OPTION');
    expect(await code(gen.interpolate({ from: 1, to: 2, steps: 4, signal: AbortSignal.abort() }))).toBe('ERR_ABORTED');
    expect(await code(styleMixGrid(gen, { rows: [1], cols: [2] }))).toBe('ERR_INVALID_OPTION');
  });
});

describeFixtures('w-space walks and style mixing (StyleGAN2 tiny32)', () => {
  let gen: Generator;
  beforeAll(async () => {
    gen = await loadGenerator(fixturePath('tiny32.pkl'), { device: 'cpu' });
  });
  afterAll(() => gen.dispose());

  it('walks in w with psi: the ends are the faces of the seeds', async () => {
    const frames = await gen.interpolate({ from: 10, to: 11, steps: 4, space: 'w', psi: 0.7 });
    expect(same(frames[0], (await gen.generate({ seed: 10, psi: 0.7 }))[0])).toBe(true);
    expect(same(frames[3], (await gen.generate({ seed: 11, psi: 0.7 }))[0])).toBe(true);
    const zWalk = await gen.interpolate({ from: 10, to: 11, steps: 4, psi: 0.7 });
    expect(same(zWalk[0], frames[0])).toBe(true);
    expect(same(zWalk[1], frames[1])).toBe(false); // a different path between the same ends
  });

  it('mixes styles: the grid has the sources on its edges, and all rows from a column give the column', async () => {
    const res = gen.info.resolution;
    const grid = await styleMixGrid(gen, { rows: [1, 2], cols: [3, 4, 5], styles: 'coarse' });
    expect([grid.width, grid.height, grid.model]).toEqual([4 * res, 3 * res, 'tiny32']);
    const tile = (img: Image, r: number, c: number): Image => {
      const data = new Uint8Array(res * res * 3);
      for (let y = 0; y < res; y++) data.set(img.data.subarray(((r * res + y) * img.width + c * res) * 3, ((r * res + y) * img.width + (c + 1) * res) * 3), y * res * 3);
      return { width: res, height: res, channels: 3, data };
    };
    const faces = await gen.generate({ seeds: [1, 2, 3, 4, 5] });
    expect(same(tile(grid, 0, 1), faces[2])).toBe(true); // column sources across the top
    expect(same(tile(grid, 2, 0), faces[1])).toBe(true); // row sources down the left
    const mixed = tile(grid, 1, 1);
    expect(same(mixed, faces[0])).toBe(false);
    expect(same(mixed, faces[2])).toBe(false);
    const all = await styleMixGrid(gen, { rows: [1], cols: [3], styles: `0-${gen.info.numWs - 1}` });
    expect(same(tile(all, 1, 1), faces[2])).toBe(true);
    expect(await code(styleMixGrid(gen, { rows: [1], cols: [3], styles: 'sideways' }))).toBe('ERR_INVALID_OPTION');
  });

  it('walks and mixes a conditional model with its class', async () => {
    const cond = await loadGenerator(fixturePath('cond32.pkl'), { device: 'cpu' });
    try {
      for (const space of ['z', 'w'] as const) {
        const frames = await cond.interpolate({ from: 1, to: 2, steps: 3, space, classIndex: 4 });
        expect(same(frames[0], (await cond.generate({ seed: 1, classIndex: 4 }))[0]), space).toBe(true);
        expect(same(frames[2], (await cond.generate({ seed: 2, classIndex: 4 }))[0]), space).toBe(true);
      }
      expect(await code(cond.interpolate({ from: 1, to: 2, steps: 3 }))).toBe('ERR_INVALID_OPTION'); // class required
      const grid = await styleMixGrid(cond, { rows: [1], cols: [2], classIndex: 3 });
      expect(grid.width).toBe(2 * cond.info.resolution);
    } finally {
      cond.dispose();
    }
  });
});

describe('facegan interpolate / mix / generate --grid (real binary)', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-walk-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes an animated WebP with one frame per step and provenance; quiet when not on a TTY', async () => {
    const file = path.join(dir, 'walk.webp');
    const r = cli(['interpolate', '--from', '1', '--to', '2', '--steps', '6', '--fps', '12', '-o', file]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`${file} (6 frames, 128×128, 12 fps, progan-celeba128)`);
    const meta = await sharp(file, { animated: true }).metadata();
    expect([meta.format, meta.pages, meta.pageHeight, meta.width, meta.loop]).toEqual(['webp', 6, 128, 128, 0]);
    expect(meta.delay).toEqual(Array(6).fill(83));
    expect(meta.xmp?.toString()).toContain(DST);
    expect(meta.xmp?.toString()).toContain('walk from seed 1 to seed 2');
  });

  it.runIf(fs.existsSync('/usr/bin/script'))('shows progress with rate and ETA on a terminal (a pty from script(1))', () => {
    const file = path.join(dir, 'tty.webp');
    const bin = path.resolve('dist', 'cli.js');
    const r = spawnSync('/usr/bin/script', ['-qec', `${process.execPath} ${bin} interpolate --from 1 --to 2 --steps 4 -o ${file}`, '/dev/null'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\rinterpolate \[-+\] 0\/4 [\d.]+\/s ETA --:--/);
    expect(r.stdout).toMatch(/\rinterpolate \[#+\] 4\/4 [\d.]+\/s ETA 00:00/);
    expect(r.stdout).toContain(`${file} (4 frames`);
  });

  it('writes an animated GIF with the XMP application extension (magic trailer) and a comment', async () => {
    const file = path.join(dir, 'walk.gif');
    const r = cli(['interpolate', '--from', '1', '--to', '2', '--steps', '3', '--fps', '10', '-o', file]);
    expect(r.status, r.stderr).toBe(0);
    const meta = await sharp(file, { animated: true }).metadata();
    expect([meta.format, meta.pages, meta.pageHeight, meta.loop]).toEqual(['gif', 3, 128, 0]);
    expect(meta.delay).toEqual([100, 100, 100]);
    const gif = fs.readFileSync(file);
    expect(gif.toString('latin1', 0, 6)).toBe('GIF89a');
    const app = gif.indexOf(Buffer.from([0x21, 0xff, 0x0b, ...Buffer.from('XMP DataXMP')]));
    expect(app).toBeGreaterThan(0);
    const end = gif.indexOf('<?xpacket end="r"?>', app) + '<?xpacket end="r"?>'.length;
    const xmp = gif.toString('utf8', app + 14, end);
    expect(xmp).toContain(`<Iptc4xmpExt:DigitalSourceType>${DST}</Iptc4xmpExt:DigitalSourceType>`);
    expect(xmp).toContain('walk from seed 1 to seed 2');
    const trailer = [0x01, ...Array.from({ length: 256 }, (_, i) => 0xff - i), 0x00];
    expect(Array.from(gif.subarray(end, end + 258))).toEqual(trailer);
    const comment = gif.indexOf(Buffer.from([0x21, 0xfe]), end);
    expect(gif.toString('latin1', comment + 3, comment + 3 + gif[comment + 2])).toMatch(/^AI-generated image .*model progan-celeba128/);
    expect(gif[gif.length - 1]).toBe(0x3b);
  });

  it('writes a folder of PNG frames', async () => {
    const frames = path.join(dir, 'frames');
    const r = cli(['interpolate', '--from', '5', '--to', '6', '--steps', '3', '--size', '64', '--frames', frames]);
    expect(r.status).toBe(0);
    expect(fs.readdirSync(frames).sort()).toEqual(['frame0000.png', 'frame0001.png', 'frame0002.png']);
    const meta = await sharp(path.join(frames, 'frame0001.png')).metadata();
    expect([meta.width, meta.height]).toEqual([64, 64]);
    expect(meta.xmp?.toString()).toContain('Frame 2 of 3');
  });

  it('refuses bad arguments with a message and exit code 1', () => {
    for (const args of [
      ['interpolate', '--from', '1', '--steps', '3', '-o', path.join(dir, 'x.webp')],
      ['interpolate', '--from', '1', '--to', '2', '-o', path.join(dir, 'x.bmp')],
      ['interpolate', '--from', '1', '--to', '2'],
      ['interpolate', '--from', '1', '--to', '2', '--space', 'w', '-o', path.join(dir, 'x.webp')],
      ['mix', '--rows', '1', '--cols', '2', '-o', path.join(dir, 'mix.png')], // ProGAN has no styles
    ]) {
      const r = cli(args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(/^facegan: \[ERR_INVALID_OPTION\] /);
    }
  });

  it('generate --grid writes one grid image', async () => {
    const file = path.join(dir, 'grid.png');
    const r = cli(['generate', '--seeds', '0-5', '--grid', '--grid-cols', '3', '-o', file]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('6 faces, 384×256');
    const meta = await sharp(file).metadata();
    expect([meta.width, meta.height]).toEqual([384, 256]);
    expect(meta.xmp?.toString()).toContain('Grid of seeds 0,1,2,3,4,5');
  });

  it.runIf(fs.existsSync(fixturePath('tiny32.pkl')))('mix writes the style-mixing grid of a StyleGAN2 model', async () => {
    const file = path.join(dir, 'mix.png');
    const r = cli(['mix', '--model', fixturePath('tiny32.pkl'), '--rows', '1,2', '--cols', '3-5', '--styles', 'middle', '-o', file]);
    expect(r.status, r.stderr).toBe(0);
    const meta = await sharp(file).metadata();
    expect([meta.width, meta.height]).toEqual([128, 96]);
    expect(meta.xmp?.toString()).toContain('middle styles from the columns');
  });
});
