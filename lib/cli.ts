#!/usr/bin/env node
/**
 * facegan — command line. `facegan --help` lists the commands, `facegan <command> --help` shows
 * one, `facegan --version` prints the version.
 *   facegan generate [--model M] [--seed N | --seeds 0-9,42] [--psi 0.7] [-o face.png | -o face-{seed}.png | --outdir dir]
 *   facegan convert SRC.pkl DST.safetensors [--half]
 *   facegan info MODEL
 *   facegan pull ID
 *   facegan export-onnx MODEL OUT.onnx [--graphs two]
 *   facegan serve [--port 8080]     a page with a new face on every refresh, and /face.png?seed=N
 *   facegan backends
 *   facegan build-native            build the addon from source (when no prebuilt binary fits)
 *
 * The library prints nothing; this is where messages go to the terminal: the licence of a
 * catalogue model before it downloads (stderr), a progress bar / progress line on a TTY (stderr),
 * one line per written file (stdout).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FaceganError } from './errors.js';
import { availableBackends } from './generator.js';
import { saveImage } from './image.js';
import { DEFAULT_MODEL, loadGenerator } from './load.js';
import { packageRoot } from './native.js';

const COMMANDS: Record<string, string> = {
  generate: `facegan generate [--model PATH|ID] [--seed N | --seeds LIST] [--psi X] [--trunc-cutoff K]
                 [--noise const|random|none] [--class K] [--device auto|cpu|cuda]
                 [-o FILE.png | -o 'face-{seed}.png' | --outdir DIR] [--grid [--grid-cols N] -o grid.png]

  Writes one PNG per seed, each as soon as it is ready. Without -o or --outdir: ./seedNNNN.png.
  -o FILE names the file for one seed; for several seeds put {seed} in it (face-{seed}.png).
  Seeds LIST: comma-separated numbers and ranges, e.g. 0-9,42 (at most 1024 seeds).
  MODEL: a checkpoint path or a catalogue id (facegan pull); default: the embedded ProGAN-128.`,
  convert: `facegan convert SRC DST.safetensors [--half]

  Converts a checkpoint (.pkl, .pt, a TF.js model) to a facegan .safetensors file (--half: float16).`,
  info: `facegan info [MODEL]

  Prints the model's description (architecture, resolution, sizes) as JSON.`,
  pull: `facegan pull ID

  Downloads a catalogue model (printing its licence first), converts it once and caches it.
  The ids and their licences are listed in docs/models.md.`,
  'export-onnx': `facegan export-onnx MODEL OUT.onnx [--graphs one|two] [--opset N] [--noise const|none] [--trunc-cutoff K]

  Writes the model as a standard ONNX graph (z -> image, or z -> ws and ws -> image with --graphs two).`,
  serve: `facegan serve [--model PATH|ID] [--port 8080] [--host 127.0.0.1] [--device auto|cpu|cuda]
              [--max-queue 32] [--queue-timeout MS] [--shutdown-timeout MS] [--no-provenance]

  Serves a page with a new face on every refresh, and /face.png?seed=N.`,
  interpolate: `facegan interpolate [--model PATH|ID] --from SEED --to SEED [--steps 60] [--space z|w] [--method slerp|lerp]
                      [--psi X] [--class K] [--fps 24] [--size N] (-o walk.webp | -o walk.gif | --frames DIR)

  A walk from one face to another: an animated WebP or GIF, or PNG frames written as they are ready.`,
  mix: `facegan mix [--model PATH|ID] --rows 1,2,3 --cols 4,5,6 [--styles coarse|middle|fine|A-B] [--psi X] [--class K] [-o mix.png]

  The StyleGAN2 style-mixing figure: each row's face with the styles of each column's face.`,
  backends: `facegan backends

  Lists the usable engines (cuda, cpu) and why CUDA is not usable when it is not.`,
  'build-native': `facegan build-native [cmake-js options]

  Builds the native addon from source into this package's build/Release (used before any
  prebuilt binary). Needs CMake >= 3.18, a C++17 compiler and cmake-js (npm install --save-dev
  cmake-js); with a CUDA toolkit (nvcc) the CUDA backend is built too (FACEGAN_CUDA=0: not).`,
};

const USAGE = `Usage: facegan <command> [options]

${Object.values(COMMANDS)
  .map((u) => `  ${u.split('\n\n')[0].replace(/\n/g, '\n  ')}`)
  .join('\n')}

  facegan <command> --help   that command's options
  facegan --version          the version`;

function version(): string {
  return (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

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

/** A model argument as a path: a catalogue id is pulled first, with its licence and a progress bar on stderr. */
async function cliModel(model: string | undefined): Promise<string> {
  if (model === undefined) return DEFAULT_MODEL;
  if (fs.existsSync(model)) return model;
  const catalog = await import('./catalog.js');
  if (!catalog.catalog.some((m) => m.id === model)) return model; // loadGenerator names the problem
  return pull(model);
}

async function pull(id: string): Promise<string> {
  const { pullModel } = await import('./catalog.js');
  const { progressBar } = await import('./download.js');
  const bar = progressBar(process.stderr, { label: id });
  try {
    return await pullModel(id, { onProgress: bar, log: (message) => process.stderr.write(`${message}\n`) });
  } finally {
    bar.done();
  }
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
  if (values.seed !== undefined && values.seeds !== undefined) {
    throw new FaceganError('ERR_INVALID_OPTION', 'Use --seed N or --seeds LIST, not both');
  }
  if (values.output !== undefined && values.outdir !== undefined) {
    throw new FaceganError('ERR_INVALID_OPTION', "Use -o FILE or --outdir DIR, not both (-o may hold a directory: -o out/face-{seed}.png)");
  }
  const seeds = values.seeds !== undefined ? parseSeeds(values.seeds) : [num('seed', values.seed) ?? Math.floor(Math.random() * 2 ** 32)];
  if (values.grid) {
    const { generateGridCommand } = await import('./cli-media.js');
    await generateGridCommand(values, seeds);
    return;
  }
  const output = values.output;
  if (output !== undefined && seeds.length > 1 && !output.includes('{seed}')) {
    throw new FaceganError(
      'ERR_INVALID_OPTION',
      `-o '${output}' names one file, but ${seeds.length} seeds were asked for: put {seed} in the name (e.g. -o face-{seed}.png) or use --outdir DIR`,
    );
  }
  const fileFor = (seed: number): string =>
    output !== undefined ? output.replaceAll('{seed}', String(seed)) : path.join(values.outdir ?? '.', `seed${String(seed).padStart(4, '0')}.png`);
  const render = {
    psi: num('psi', values.psi),
    truncationCutoff: num('trunc-cutoff', values['trunc-cutoff']),
    noiseMode: values.noise as never,
    classIndex: num('class', values.class),
  };

  const gen = await loadGenerator(await cliModel(values.model), { device: values.device as never });
  // A progress line on a terminal (stderr), cleared before each file line (stdout).
  const tty = process.stderr.isTTY === true && seeds.length > 1;
  const status = (text: string): void => {
    if (tty) process.stderr.write(`\r\x1b[K${text}`);
  };
  // One engine call per image on the CPU (each is multithreaded already); small batches on CUDA.
  const chunk = gen.info.backend === 'cuda' ? 8 : 1;
  let written = 0;
  try {
    for (let i = 0; i < seeds.length; i += chunk) {
      status(`facegan: ${written}/${seeds.length} images, generating seed ${seeds[i]}…`);
      const images = await gen.generate({ ...render, seeds: seeds.slice(i, i + chunk), output: 'uint8' });
      for (const [k, img] of images.entries()) {
        const seed = img.seed ?? seeds[i + k];
        const file = fileFor(seed);
        fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
        await saveImage(img, file);
        written++;
        status('');
        console.log(`${file} (${img.width}×${img.height}, seed ${seed}, ${gen.info.backend})`);
      }
    }
  } finally {
    status('');
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
  if (args.length > 1) throw new FaceganError('ERR_INVALID_OPTION', `info takes one MODEL, received ${args.length} arguments`);
  const gen = await loadGenerator(await cliModel(args[0]), { device: 'cpu' });
  console.log(JSON.stringify(gen.info, null, 2));
  gen.dispose();
}

async function cmdPull(args: string[]): Promise<void> {
  if (args.length !== 1) throw new FaceganError('ERR_INVALID_OPTION', 'pull needs one model id');
  console.log(await pull(args[0]));
}

/** Builds the addon from source with scripts/build-native.mjs (shipped in the package). */
function cmdBuildNative(args: string[]): number {
  const script = path.join(packageRoot, 'scripts', 'build-native.mjs');
  const r = spawnSync(process.execPath, [script, ...args], { cwd: packageRoot, stdio: 'inherit' });
  if (r.status !== 0) return r.status ?? 1;
  console.log(`facegan: built ${path.join(packageRoot, 'build', 'Release', 'facegan.node')}; it is loaded before any prebuilt binary.`);
  return 0;
}

async function cmdServe(args: string[]): Promise<void> {
  const { serveCommand } = await import('./serve-cli.js');
  await serveCommand(args);
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== undefined && command in COMMANDS && (rest.includes('--help') || rest.includes('-h'))) {
    console.log(`Usage: ${COMMANDS[command]}`);
    return 0;
  }
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
      case 'build-native':
        return cmdBuildNative(rest);
      case '-v':
      case '--version':
      case 'version':
        console.log(version());
        return 0;
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        if (command === 'help' && rest[0] !== undefined && rest[0] in COMMANDS) {
          console.log(`Usage: ${COMMANDS[rest[0]]}`);
          return 0;
        }
        (command === undefined ? console.error : console.log)(USAGE);
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
