#!/usr/bin/env node
/**
 * facegan — command line.
 *   facegan generate [--model M] [--seed N | --seeds 0-9,42] [--psi 0.7] [-o face.png | --outdir dir]
 *   facegan convert SRC.pkl DST.safetensors [--half]
 *   facegan info MODEL
 *   facegan pull ID
 *   facegan export-onnx MODEL OUT.onnx [--graphs two]
 *   facegan serve [--port 8080]     a page with a new face on every refresh, and /face.png?seed=N
 *   facegan backends
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FaceganError } from './errors.js';
import { availableBackends } from './generator.js';
import { saveImage } from './image.js';
import { DEFAULT_MODEL, loadGenerator } from './load.js';

const USAGE = `Usage:
  facegan generate [--model PATH|ID] [--seed N | --seeds LIST] [--psi X] [--trunc-cutoff K]
                   [--noise const|random|none] [--class K] [--device auto|cpu|cuda]
                   [-o FILE.png | --outdir DIR] [--grid [--grid-cols N] -o grid.png]
  facegan convert SRC DST.safetensors [--half]
  facegan info [MODEL]
  facegan pull ID
  facegan export-onnx MODEL OUT.onnx [--graphs one|two] [--opset N] [--noise const|none] [--trunc-cutoff K]
  facegan serve [--model PATH|ID] [--port 8080] [--host 127.0.0.1] [--device auto|cpu|cuda]
                [--max-queue 32] [--queue-timeout MS] [--shutdown-timeout MS] [--no-provenance]
  facegan interpolate [--model PATH|ID] --from SEED --to SEED [--steps 60] [--space z|w] [--method slerp|lerp]
                      [--psi X] [--fps 24] [--size N] (-o walk.webp | --frames DIR)
  facegan mix [--model PATH|ID] --rows 1,2,3 --cols 4,5,6 [--styles coarse|middle|fine|A-B] [--psi X] [-o mix.png]
  facegan backends

Seeds LIST: comma-separated numbers and ranges, e.g. 0-9,42.
MODEL defaults to the embedded ProGAN-128 (CelebA) face model.`;

function parseSeeds(list: string): number[] {
  const seeds: number[] = [];
  for (const part of list.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new FaceganError('ERR_INVALID_OPTION', `Expected seeds like 0-9,42 but received '${list}'`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    for (let s = a; s <= b && seeds.length <= 1024; s++) seeds.push(s);
  }
  return seeds;
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x)) throw new FaceganError('ERR_INVALID_OPTION', `Expected a number for --${name} but received '${v}'`);
  return x;
}

async function cmdGenerate(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      seed: { type: 'string' },
      seeds: { type: 'string' },
      psi: { type: 'string' },
      'trunc-cutoff': { type: 'string' },
      noise: { type: 'string' },
      class: { type: 'string' },
      device: { type: 'string' },
      output: { type: 'string', short: 'o' },
      outdir: { type: 'string' },
      grid: { type: 'boolean' },
      'grid-cols': { type: 'string' },
    },
  });
  const seeds = values.seeds !== undefined ? parseSeeds(values.seeds) : [num('seed', values.seed) ?? Math.floor(Math.random() * 2 ** 32)];
  if (values.grid) {
    const { generateGridCommand } = await import('./cli-media.js');
    await generateGridCommand(values, seeds);
    return;
  }
  const gen = await loadGenerator(values.model ?? DEFAULT_MODEL, { device: values.device as never });
  try {
    const images = await gen.generate({
      seeds,
      psi: num('psi', values.psi),
      truncationCutoff: num('trunc-cutoff', values['trunc-cutoff']),
      noiseMode: values.noise as never,
      classIndex: num('class', values.class),
    });
    const outdir = values.outdir;
    if (outdir) fs.mkdirSync(outdir, { recursive: true });
    for (const img of images) {
      const file =
        images.length === 1 && values.output ? values.output : path.join(outdir ?? '.', `seed${String(img.seed).padStart(4, '0')}.png`);
      await saveImage(img, file);
      console.log(`${file} (${img.width}×${img.height}, seed ${img.seed}, ${gen.info.backend})`);
    }
  } finally {
    gen.dispose();
  }
}

async function cmdConvert(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { half: { type: 'boolean' } } });
  if (positionals.length !== 2) throw new FaceganError('ERR_INVALID_OPTION', 'convert needs SRC and DST');
  const { convertCheckpoint } = await import('./convert/index.js');
  await convertCheckpoint(positionals[0], positionals[1], { half: values.half ?? false });
  console.log(`wrote ${positionals[1]}`);
}

async function cmdInfo(args: string[]): Promise<void> {
  const gen = await loadGenerator(args[0] ?? DEFAULT_MODEL, { device: 'cpu' });
  console.log(JSON.stringify(gen.info, null, 2));
  gen.dispose();
}

async function cmdPull(args: string[]): Promise<void> {
  if (args.length !== 1) throw new FaceganError('ERR_INVALID_OPTION', 'pull needs one model id');
  const { pullModel } = await import('./catalog.js');
  const { progressBar } = await import('./download.js');
  const bar = progressBar(process.stderr, { label: args[0] });
  const file = await pullModel(args[0], { onProgress: bar });
  bar.done();
  console.log(file);
}

async function cmdServe(args: string[]): Promise<void> {
  const { serveCommand } = await import('./serve-cli.js');
  await serveCommand(args);
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'generate':
        await cmdGenerate(rest);
        return 0;
      case 'convert':
        await cmdConvert(rest);
        return 0;
      case 'info':
        await cmdInfo(rest);
        return 0;
      case 'pull':
        await cmdPull(rest);
        return 0;
      case 'export-onnx': {
        const { exportOnnxCli } = await import('./onnx/index.js');
        await exportOnnxCli(rest);
        return 0;
      }
      case 'interpolate':
        await (await import('./cli-media.js')).interpolateCommand(rest);
        return 0;
      case 'mix':
        await (await import('./cli-media.js')).mixCommand(rest);
        return 0;
      case 'serve':
        await cmdServe(rest);
        return 0;
      case 'backends': {
        const b = availableBackends();
        console.log(`available: ${b.backends.join(', ')}${b.unavailable ? `\nunavailable: ${b.unavailable}` : ''}`);
        return 0;
      }
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        console.log(USAGE);
        return command === undefined ? 1 : 0;
      default:
        console.error(`Unknown command '${command}'.\n${USAGE}`);
        return 1;
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    console.error(`facegan: ${e.code ? `[${e.code}] ` : ''}${e.message}`);
    return 1;
  }
}

const invokedDirectly = process.argv[1] && fs.realpathSync(process.argv[1]) === fs.realpathSync(new URL(import.meta.url).pathname);
if (invokedDirectly) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
