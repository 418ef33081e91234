/**
 * CLI commands for walks and grids:
 *   facegan interpolate --from 1 --to 2 --steps 60 -o walk.webp      (animated WebP)
 *   facegan interpolate --from 1 --to 2 --steps 60 --frames walk/    (PNG frames, written as they are ready)
 *   facegan mix --rows 1,2,3 --cols 4,5,6 --styles coarse -o mix.png (StyleGAN2 style-mixing figure)
 *   facegan generate --seeds 0-15 --grid -o grid.png                 (see cli.ts; uses writeGrid)
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FaceganError } from './errors.js';
import type { Generator, Image } from './generator.js';
import { encodeAnimation, saveImage } from './image.js';
import { styleMixGrid, tileImages, type Frame } from './interpolate.js';
import { DEFAULT_MODEL, loadGenerator } from './load.js';
import { progress } from './progress.js';

export const MEDIA_USAGE = `  facegan interpolate [--model PATH|ID] --from SEED --to SEED [--steps 60] [--space z|w] [--method slerp|lerp]
                      [--psi X] [--class K] [--fps 24] [--size N] (-o walk.webp | -o walk.gif | --frames DIR)
  facegan mix [--model PATH|ID] --rows 1,2,3 --cols 4,5,6 [--styles coarse|middle|fine|A-B] [--psi X] [--class K] [-o mix.png]`;

/** Raw frames an animation may hold in memory before --frames is required. */
const MAX_ANIMATION_BYTES = 1024 * 2 ** 20;

function bad(message: string): FaceganError {
  return new FaceganError('ERR_INVALID_OPTION', message);
}

function int(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw bad(`Expected an integer in [${min}, ${max}] for --${name} but received '${v}'`);
  return Number(v);
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x)) throw bad(`Expected a number for --${name} but received '${v}'`);
  return x;
}

function seedList(name: string, v: string | undefined): number[] {
  if (v === undefined) throw bad(`--${name} is required (seeds like 1,2,3 or 0-4)`);
  const seeds: number[] = [];
  for (const part of v.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw bad(`Expected seeds like 1,2,3 or 0-4 for --${name} but received '${v}'`);
    for (let s = Number(m[1]); s <= Number(m[2] ?? m[1]) && seeds.length <= 16; s++) seeds.push(s);
  }
  if (seeds.length > 16) throw bad(`--${name}: at most 16 seeds`);
  return seeds;
}

/**
 * A --model argument as a path. A catalogue id is pulled first the way `facegan pull` does it: its
 * licence and a progress bar on stderr (the library itself prints nothing).
 */
export async function modelArgument(model: string | undefined): Promise<string> {
  if (model === undefined) return DEFAULT_MODEL;
  if (fs.existsSync(model)) return model;
  const catalog = await import('./catalog.js');
  if (!catalog.catalog.some((m) => m.id === model)) return model; // loadGenerator names the problem
  const { progressBar } = await import('./download.js');
  const bar = progressBar(process.stderr, { label: model });
  try {
    return await catalog.pullModel(model, { onProgress: bar, log: (message) => process.stderr.write(`${message}\n`) });
  } finally {
    bar.done();
  }
}

async function withModel<T>(model: string | undefined, device: string | undefined, fn: (gen: Generator) => Promise<T>): Promise<T> {
  const gen = await loadGenerator(await modelArgument(model), { device: device as never });
  try {
    return await fn(gen);
  } finally {
    gen.dispose();
  }
}

export async function interpolateCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      device: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      steps: { type: 'string' },
      space: { type: 'string' },
      method: { type: 'string' },
      psi: { type: 'string' },
      class: { type: 'string' },
      fps: { type: 'string' },
      size: { type: 'string' },
      output: { type: 'string', short: 'o' },
      frames: { type: 'string' },
      'no-provenance': { type: 'boolean' },
    },
  });
  const from = int('from', values.from, 0, 2 ** 32 - 1);
  const to = int('to', values.to, 0, 2 ** 32 - 1);
  if (from === undefined || to === undefined) throw bad('interpolate needs --from SEED and --to SEED');
  const steps = int('steps', values.steps, 2, 100_000) ?? 60;
  const fps = num('fps', values.fps) ?? 24;
  const size = int('size', values.size, 16, 2048);
  const out = values.output;
  const dir = values.frames;
  if ((out === undefined) === (dir === undefined)) throw bad('interpolate writes either -o FILE.webp (animated) or --frames DIR');
  const animation = out === undefined ? undefined : path.extname(out).toLowerCase();
  if (animation !== undefined && animation !== '.webp' && animation !== '.gif') {
    throw bad(`-o must name an animated .webp or .gif file but received '${out}' (or use --frames DIR)`);
  }
  const provenanceOff = values['no-provenance'] === true;
  await withModel(values.model, values.device, async (gen) => {
    const res = size ?? gen.info.resolution;
    if (out !== undefined && steps * res * res * 3 > MAX_ANIMATION_BYTES) {
      throw bad(`${steps} frames of ${res}² are too many to hold for one animation; use --frames DIR (or fewer --steps / a smaller --size)`);
    }
    if (dir !== undefined) fs.mkdirSync(dir, { recursive: true });
    const walk = `a walk from seed ${from} to seed ${to}`;
    const bar = progress(steps, 'interpolate');
    const held: Frame[] = [];
    for await (const batch of gen.interpolateFrames({
      from,
      to,
      steps,
      space: values.space as never,
      method: values.method as never,
      psi: num('psi', values.psi),
      classIndex: num('class', values.class),
    })) {
      for (const frame of batch) {
        if (dir !== undefined) {
          const file = path.join(dir, `frame${String(frame.index).padStart(4, '0')}.png`);
          await saveImage(frame, file, {
            size,
            provenance: provenanceOff ? false : { model: gen.modelName, note: `Frame ${frame.index + 1} of ${steps} of ${walk}.` },
          });
        } else {
          held.push(frame);
        }
        bar.tick();
      }
    }
    bar.done();
    if (out !== undefined) {
      const body = await encodeAnimation(held, {
        format: animation === '.gif' ? 'gif' : 'webp',
        fps,
        size,
        provenance: provenanceOff ? false : { model: gen.modelName, note: `Animation of ${steps} frames: ${walk}.` },
      });
      fs.writeFileSync(out, body);
      console.log(`${out} (${steps} frames, ${res}×${res}, ${fps} fps, ${gen.modelName})`);
    } else {
      console.log(`${dir}${path.sep}frame0000.png … frame${String(steps - 1).padStart(4, '0')}.png (${steps} frames, ${res}×${res}, ${gen.modelName})`);
    }
  });
}

export async function mixCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      device: { type: 'string' },
      rows: { type: 'string' },
      cols: { type: 'string' },
      styles: { type: 'string' },
      psi: { type: 'string' },
      class: { type: 'string' },
      output: { type: 'string', short: 'o' },
      'no-provenance': { type: 'boolean' },
    },
  });
  const rows = seedList('rows', values.rows);
  const cols = seedList('cols', values.cols);
  const out = values.output ?? 'mix.png';
  const styles = values.styles ?? 'coarse';
  await withModel(values.model, values.device, async (gen) => {
    const grid = await styleMixGrid(gen, { rows, cols, styles, psi: num('psi', values.psi), classIndex: num('class', values.class) });
    await saveImage(grid, out, {
      provenance: values['no-provenance']
        ? false
        : { model: gen.modelName, note: `Style-mixing grid: rows seeds ${rows.join(',')}, columns seeds ${cols.join(',')}, ${styles} styles from the columns.` },
    });
    console.log(`${out} (${rows.length}×${cols.length} mixes of ${styles} styles, ${grid.width}×${grid.height}, ${gen.modelName})`);
  });
}

/** `generate --grid`: the images as one grid image (columns: --grid-cols, default about square). */
export async function writeGrid(images: Image[], file: string, columns: number | undefined, model: string, seeds: number[]): Promise<void> {
  const cols = columns ?? Math.ceil(Math.sqrt(images.length));
  const grid = tileImages(images, cols);
  await saveImage(grid, file, { provenance: { model, note: `Grid of seeds ${seeds.join(',')}.` } });
  console.log(`${file} (${images.length} faces, ${grid.width}×${grid.height}, ${model})`);
}

/** `facegan generate --seeds … --grid [-o grid.png] [--grid-cols N]`: one image with every face. */
export async function generateGridCommand(
  values: { model?: string; device?: string; psi?: string; 'trunc-cutoff'?: string; noise?: string; class?: string; output?: string; outdir?: string; 'grid-cols'?: string },
  seeds: number[],
): Promise<void> {
  if (values.outdir !== undefined) throw bad('--grid writes one file: use -o grid.png, not --outdir');
  const out = values.output ?? 'grid.png';
  const cols = int('grid-cols', values['grid-cols'], 1, 1024);
  await withModel(values.model, values.device, async (gen) => {
    const bar = progress(seeds.length, 'generate');
    const images: Image[] = [];
    for (let i = 0; i < seeds.length; i += gen.batchSize) {
      const batch = await gen.generate({
        seeds: seeds.slice(i, i + gen.batchSize),
        psi: num('psi', values.psi),
        truncationCutoff: num('trunc-cutoff', values['trunc-cutoff']),
        noiseMode: values.noise as never,
        classIndex: num('class', values.class),
      });
      images.push(...batch);
      bar.tick(batch.length);
    }
    bar.done();
    await writeGrid(images, out, cols, gen.modelName, seeds);
  });
}
