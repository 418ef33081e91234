#!/usr/bin/env node
/**
 * How long loadGenerator() blocks the main thread, and the process's peak RSS, for the default
 * model (ProGAN, float16 safetensors, 46 MB) and a 1024² StyleGAN2 network pickle.
 *
 *   npm run build:ts
 *   node bench/load-path.js --make-pickle /tmp/sg2-1024.pkl   # once: a random-weights config-f pickle (G + G_ema, 243 MB)
 *   node bench/load-path.js --pickle /tmp/sg2-1024.pkl [--runs 3] [--json out.json] [--dist DIR]
 *
 * Each load runs in a fresh `node` process (so peak RSS is that load's), with the addon already
 * loaded: an event-loop-delay histogram (perf_hooks.monitorEventLoopDelay, 1 ms resolution) gives
 * the longest stall, and a 1 ms setInterval the total time the loop was stalled (the sum over
 * ticks of the gap beyond 1 ms, counting gaps > 10 ms: on a busy 2-core machine shorter gaps are
 * mostly the scheduler, not this thread's work). Figures are the median of the runs.
 * `--dist DIR` measures another build of dist/ (e.g. an older commit's, for the 'before' column).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};

if (args[0] === '--child') {
  // One measured load: node bench/load-path.js --child DIST MODEL
  const [, dist, model] = args;
  const { monitorEventLoopDelay } = await import('node:perf_hooks');
  const lib = await import(pathToFileURL(path.join(dist, 'index.js')).href);
  lib.availableBackends(); // load the addon first: its dlopen is not the load path
  const rssBefore = process.memoryUsage().rss;
  const h = monitorEventLoopDelay({ resolution: 1 });
  let last = performance.now();
  let stalled = 0;
  let ticks = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    const gap = now - last;
    if (gap > 10) stalled += gap - 1;
    last = now;
    ticks++;
  }, 1);
  h.enable();
  const t0 = performance.now();
  const gen = await lib.loadGenerator(model, { device: 'cpu' });
  const wall = performance.now() - t0;
  h.disable();
  clearInterval(tick);
  const out = {
    wallMs: wall,
    maxBlockMs: h.max / 1e6,
    p99BlockMs: h.percentile(99) / 1e6,
    stalledMs: stalled,
    ticks,
    rssBeforeMiB: rssBefore / 2 ** 20,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    rssAfterMiB: process.memoryUsage().rss / 2 ** 20,
    resolution: gen.info.resolution,
    arch: gen.info.arch,
  };
  gen.dispose();
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

if (args[0] === '--make-pickle') {
  // A random-weights StyleGAN2 config-f (FFHQ 1024²) network pickle, written by the tests' own
  // pickle writer (test/unit/convert/synthetic.ts, compiled here into a temporary folder).
  const dst = path.resolve(args[1] ?? '/tmp/sg2-1024.pkl');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-synth-'));
  execFileSync('npx', ['tsc', '--ignoreConfig', '--outDir', tmp, '--rootDir', root, '--module', 'nodenext', '--moduleResolution', 'nodenext',
    '--target', 'es2022', '--skipLibCheck', '--types', 'node', path.join(root, 'test/unit/convert/synthetic.ts')], { stdio: 'inherit', cwd: root });
  // The tensor list comes from the addon (lib/convert/tensor-list.ts): the compiled copy finds it,
  // and node-gyp-build, through links to this checkout's build/ and node_modules/.
  for (const dir of ['build', 'node_modules']) fs.symlinkSync(path.join(root, dir), path.join(tmp, dir));
  const synth = await import(pathToFileURL(path.join(tmp, 'test/unit/convert/synthetic.js')).href);
  const config = {
    arch: 'stylegan2', z_dim: 512, w_dim: 512, c_dim: 0, img_resolution: 1024, img_channels: 3, num_ws: 18,
    mapping_layers: 8, mapping_lr_multiplier: 0.01, channel_base: 32768, channel_max: 512, conv_clamp: 256, num_fp16_res: 4,
  };
  // Small random values: a random 1024² network does not overflow and keeps its images finite.
  const tensors = synth.randomTensors(config, 7);
  for (const t of tensors.values()) for (let i = 0; i < t.data.length; i++) t.data[i] /= 64;
  fs.writeFileSync(dst, synth.pytorchPickle(config, tensors));
  fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`wrote ${dst} (${(fs.statSync(dst).size / 2 ** 20).toFixed(0)} MiB)`);
  process.exit(0);
}

const dist = path.resolve(opt('--dist', path.join(root, 'dist')));
const runs = Number(opt('--runs', '3'));
const pickle = opt('--pickle');
const lib = await import(pathToFileURL(path.join(dist, 'index.js')).href);
const models = [{ name: 'default model (ProGAN 128², F16 safetensors, 46 MB)', file: lib.DEFAULT_MODEL }];
if (pickle) models.push({ name: `StyleGAN2 1024² network pickle (${(fs.statSync(pickle).size / 2 ** 20).toFixed(0)} MiB)`, file: pickle });
else console.warn('no --pickle: measuring the default model only (make one with --make-pickle)');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = [];
for (const m of models) {
  const samples = [];
  for (let r = 0; r < runs; r++) {
    const p = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', dist, m.file], { encoding: 'utf8' });
    if (p.status !== 0) throw new Error(`load of ${m.file} failed:\n${p.stderr}`);
    samples.push(JSON.parse(p.stdout.trim().split('\n').pop()));
  }
  const row = { model: m.name, runs };
  for (const k of ['wallMs', 'maxBlockMs', 'p99BlockMs', 'stalledMs', 'rssBeforeMiB', 'peakRssMiB', 'rssAfterMiB']) row[k] = +median(samples.map((s) => s[k])).toFixed(1);
  results.push(row);
  console.log(`${m.name}: load ${row.wallMs} ms, longest stall ${row.maxBlockMs} ms, stalled ${row.stalledMs} ms in all, ` +
    `peak RSS ${row.peakRssMiB} MiB (${row.rssBeforeMiB} before, ${row.rssAfterMiB} after)`);
}
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const summary = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpu, dist, results };
const json = opt('--json');
if (json) fs.writeFileSync(json, `${JSON.stringify(summary, null, 2)}\n`);
