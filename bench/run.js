#!/usr/bin/env node
/**
 * facegan vs ONNX Runtime (onnxruntime-node, CPU) on the same weights, same inputs, same thread
 * count, in one process; plus facegan CUDA when the addon has it.
 *
 *   npm run bench                 # build dist/ (tsc), then every model and batch size
 *   npm run bench -- --quick      # under a minute: the 256² model, batch 1, few samples
 *   node bench/run.js [--quick] [--threads N] [--models ffhq256,ffhq1024,progan128]
 *                     [--batches 1,4,16] [--min-samples N] [--max-time SECONDS]
 *                     [--suite] [--no-write] [--out DIR]
 *
 * Timing: after one warm-up call each, facegan and ORT calls alternate (A B, B A, A B, …) until
 * each engine has --min-samples samples and --max-time seconds have passed (or 50 samples);
 * statistics as benchmark.js defines them (bench/stats.js). With --suite, a benchmark.js Suite
 * holding both (deferred) benchmarks runs instead (one engine's samples after the other's).
 *
 * One call = z (batch × 512) and psi 0.7 → float32 images (NCHW), noise 'const':
 *   facegan: gen.generate({ z, psi, noiseMode: 'const', output: 'float32' })  (one engine call)
 *   ORT:     session.run({ z, psi }) on the one-graph export of the same weights
 *
 * Writes bench/results.json and the "ONNX Runtime baseline" section of bench/RESULTS.md (other
 * sections are kept); with --quick, bench/results-quick.json only. --out DIR writes them to DIR
 * instead (e.g. when running from a clean clone of a commit).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const require = createRequire(import.meta.url);

if (!fs.existsSync(path.join(root, 'dist', 'onnx', 'index.js'))) {
  console.error('bench: dist/ is missing or has no onnx/ (run `npm run build:ts` first, or use `npm run bench`)');
  process.exit(1);
}

const Benchmark = require('benchmark');
const ort = await import('onnxruntime-node');
const { loadGenerator, availableBackends } = await import('../dist/index.js');
const { serializeModel, readCheckpoint } = await import('../dist/convert/index.js');
const { buildOnnx } = await import('../dist/onnx/index.js');
const { randomStyleGAN2, stylegan2Config, paramCount } = await import('./models.js');
const { summarize, fromBenchmark } = await import('./stats.js');

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    threads: { type: 'string' },
    models: { type: 'string' },
    batches: { type: 'string' },
    'min-samples': { type: 'string' },
    'max-time': { type: 'string' },
    suite: { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const outDir = args.out ? path.resolve(args.out) : here;

const quick = args.quick;
const threads = args.threads ? Number(args.threads) : os.availableParallelism();
const minSamples = args['min-samples'] ? Number(args['min-samples']) : quick ? 3 : 5;
const maxSamples = 50;
const maxTime = args['max-time'] ? Number(args['max-time']) : quick ? 2 : 20;
const onlyModels = args.models ? args.models.split(',') : quick ? ['ffhq256'] : undefined;
const onlyBatches = args.batches ? args.batches.split(',').map(Number) : quick ? [1] : undefined;
const PSI = 0.7;

const MODELS = [
  {
    id: 'progan128',
    label: 'ProGAN-128 CelebA (weights/progan-celeba128.safetensors)',
    file: path.join(root, 'weights', 'progan-celeba128.safetensors'),
    cpuBatches: [1, 4, 16],
    cudaBatches: [1, 4, 16],
  },
  {
    id: 'ffhq256',
    label: 'StyleGAN2 FFHQ-shaped 256² (channel_base 16384, random weights)',
    config: () => stylegan2Config(256, 16384),
    cpuBatches: [1, 4, 16],
    cudaBatches: [1, 4, 16],
  },
  {
    id: 'ffhq1024',
    label: 'StyleGAN2 FFHQ config-f 1024² (channel_base 32768, random weights)',
    config: () => stylegan2Config(1024, 32768),
    cpuBatches: [1],
    cudaBatches: [1, 4, 16],
  },
];

const now = () => Number(process.hrtime.bigint()) / 1e9;
const sh = (cmd, a) => {
  try {
    return execFileSync(cmd, a, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
};

function machine() {
  const lscpu = sh('lscpu', []);
  const cpu = /^Model name:\s*(.+)$/m.exec(lscpu)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  // The vector / matrix extensions the CPU engine can use (kernels chosen at run time by cpuid).
  const flags = new Set((/^Flags:\s*(.+)$/m.exec(lscpu)?.[1] ?? '').split(/\s+/));
  const isa = [
    ['avx2', 'AVX2'],
    ['fma', 'FMA'],
    ['avx512f', 'AVX-512'],
    ['avx512_bf16', 'AVX512-BF16'],
    ['amx_tile', 'AMX'],
  ].filter(([f]) => flags.has(f)).map(([, name]) => name);
  const ortVersion = ort.env?.versions?.common ?? require('onnxruntime-node/package.json').version;
  return {
    cpu,
    isa: isa.join(', ') || 'unknown',
    cores: os.availableParallelism(),
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    platform: `${process.platform}-${process.arch}`,
    node: process.version,
    onnxruntime_node: ortVersion,
  };
}

function provenance() {
  const commit = sh('git', ['rev-parse', 'HEAD']);
  const dirty = sh('git', ['diff', '--name-only', 'HEAD']).split('\n').filter(Boolean);
  const addon = path.join(root, 'build', 'Release', 'facegan.node');
  const addonTime = fs.existsSync(addon) ? fs.statSync(addon).mtime.toISOString() : null;
  const lastNative = sh('git', ['log', '-1', '--format=%h %cI', '--', 'native', 'CMakeLists.txt']);
  return { commit, modified_tracked_files: dirty, addon: fs.existsSync(addon) ? 'build/Release/facegan.node' : 'prebuild', addon_mtime: addonTime, last_native_commit: lastNative };
}

function command() {
  const extra = process.argv.slice(2).join(' ');
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${extra ? ` -- ${extra}` : ''}`;
  return `node bench/run.js${extra ? ` ${extra}` : ''}`;
}

function maxAbsDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Alternates the runners call by call (ABBA order) and returns one stats object per runner. */
async function alternate(runners, { warm = true } = {}) {
  if (warm) for (const r of runners) await r.fn();
  const samples = runners.map(() => []);
  const start = now();
  for (let round = 0; ; round++) {
    const order = runners.map((_, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const i of order) {
      const t0 = now();
      await runners[i].fn();
      samples[i].push(now() - t0);
    }
    const n = round + 1;
    if (n >= maxSamples || (n >= minSamples && now() - start >= maxTime)) break;
  }
  return samples.map(summarize);
}

/** benchmark.js Suite with every runner as a deferred benchmark. */
function suite(runners) {
  return new Promise((resolve, reject) => {
    const s = new Benchmark.Suite();
    for (const r of runners) {
      s.add(r.name, {
        defer: true,
        minSamples,
        maxTime,
        fn: (deferred) => {
          r.fn().then(() => deferred.resolve(), reject);
        },
      });
    }
    s.on('complete', function () {
      resolve(this.map((b) => fromBenchmark(b.stats)));
    });
    s.on('error', (e) => reject(e.target.error));
    s.run({ async: true });
  });
}

const measure = (runners, opts) => (args.suite ? suite(runners) : alternate(runners, opts));

function zFor(batch, zDim, seed0 = 0) {
  // Deterministic, the same for both engines.
  let a = 0x9e3779b9 ^ seed0;
  const z = new Float32Array(batch * zDim);
  for (let i = 0; i < z.length; i += 2) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    const u = (a + 1) / 4294967297;
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    const v = a / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u));
    z[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < z.length) z[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return z;
}

const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '–');

async function benchModel(spec, backends, results, notes, tmpdir) {
  let model;
  let file;
  const t0 = now();
  if (spec.file) {
    if (!fs.existsSync(spec.file)) {
      notes.push(`${spec.id}: skipped, ${path.relative(root, spec.file)} is not present`);
      console.log(`\n${spec.label}: skipped (${path.relative(root, spec.file)} not present)`);
      return;
    }
    try {
      model = await readCheckpoint(spec.file);
    } catch (err) {
      notes.push(`${spec.id}: skipped, ${err.message}`);
      console.log(`\n${spec.label}: skipped (${err.message})`);
      return;
    }
    file = spec.file;
  } else {
    model = randomStyleGAN2(spec.config(), 1);
    file = path.join(tmpdir, `${spec.id}.safetensors`);
    fs.writeFileSync(file, serializeModel(model));
  }
  const cfg = model.config;
  let onnx;
  try {
    onnx = buildOnnx(model, { graphs: 'one', noiseMode: 'const' });
  } catch (err) {
    notes.push(`${spec.id}: no ONNX export (${err.message})`);
    console.log(`\n${spec.label}: skipped, no ONNX export (${err.message})`);
    return;
  }
  const tModel = now() - t0;
  const cpuBatches = onlyBatches ?? spec.cpuBatches;
  const maxBatch = Math.max(...cpuBatches, ...(backends.includes('cuda') ? spec.cudaBatches : [1]));
  const t1 = now();
  const session = await ort.InferenceSession.create(onnx.model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // ORT's worker threads otherwise spin after each run and take the cores from the facegan call
    // that follows in the alternation; facegan's pool sleeps between calls, so this keeps it fair.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  const tSession = now() - t1;
  const t2 = now();
  const gen = await loadGenerator(file, { device: 'cpu', threads, batchSize: maxBatch });
  const tLoad = now() - t2;
  console.log(
    `\n${spec.label}: ${(paramCount(model) / 1e6).toFixed(2)} M params, ONNX ${(onnx.model.length / 2 ** 20).toFixed(1)} MiB ` +
      `(weights + export ${tModel.toFixed(1)} s, ORT session ${tSession.toFixed(1)} s, facegan load ${tLoad.toFixed(1)} s)`,
  );
  const info = { params: paramCount(model), onnx_bytes: onnx.model.length, ort_session_s: tSession, facegan_load_s: tLoad };
  try {
    for (const batch of cpuBatches) {
      const z = zFor(batch, cfg.z_dim);
      // ProGAN has no truncation and no noise: z alone.
      const progan = cfg.arch === 'progan';
      const feeds = { z: new ort.Tensor('float32', z, [batch, cfg.z_dim]) };
      if (!progan) feeds.psi = new ort.Tensor('float32', Float32Array.of(PSI), []);
      const genOpts = progan ? { z, output: 'float32' } : { z, psi: PSI, noiseMode: 'const', output: 'float32' };
      const runFacegan = async () => gen.generate(genOpts);
      const runOrt = async () => (await session.run(feeds)).img;
      // Same function? (This is also the warm-up call of each engine.)
      const a = await runFacegan();
      const b = (await runOrt()).data;
      const per = a[0].data.length;
      let diff = 0;
      a.forEach((im, i) => (diff = Math.max(diff, maxAbsDiff(im.data, b.subarray(i * per, (i + 1) * per)))));
      const load0 = os.loadavg()[0];
      const [f, o] = await measure([
        { name: 'facegan cpu', fn: runFacegan },
        { name: 'onnxruntime cpu', fn: runOrt },
      ], { warm: false });
      const load1 = os.loadavg()[0];
      const row = (engine, s) => ({
        model: spec.id, batch, engine, threads,
        ms_per_call: s.mean * 1e3, ms_per_image: (s.mean * 1e3) / batch, images_per_s: batch / s.mean,
        median_ms_per_call: s.median * 1e3, min_ms_per_call: s.min * 1e3, rme_pct: s.rme, samples: s.n,
        samples_ms: s.sample.map((x) => Math.round(x * 1e4) / 10),
        loadavg_1m: [Math.round(load0 * 100) / 100, Math.round(load1 * 100) / 100],
      });
      const rf = row('facegan-cpu', f);
      const ro = row('onnxruntime-cpu', o);
      rf.ratio_vs_ort = ro.ms_per_call / rf.ms_per_call;
      // Calls alternate, so sample i of each engine ran back to back: the median of the paired
      // ratios resists load that drifts during the measurement better than the ratio of means.
      if (!args.suite) rf.ratio_vs_ort_paired_median = summarize(f.sample.map((t, i) => o.sample[i] / t)).median;
      rf.max_abs_diff_vs_ort = diff;
      results.push(rf, ro);
      console.log(
        `  batch ${String(batch).padStart(2)}: facegan ${fmt(rf.images_per_s, 2)} img/s (${fmt(rf.ms_per_image)} ms/img ±${fmt(f.rme)}%, n=${f.n})  ` +
          `ORT ${fmt(ro.images_per_s, 2)} img/s (${fmt(ro.ms_per_image)} ms/img ±${fmt(o.rme)}%, n=${o.n})  ` +
          `facegan/ORT ${fmt(rf.ratio_vs_ort, 2)}× (paired median ${fmt(rf.ratio_vs_ort_paired_median, 2)}×)  max|Δ| ${diff.toExponential(1)}  load ${load0.toFixed(1)}→${load1.toFixed(1)}`,
      );
    }
  } finally {
    gen.dispose();
    await session.release?.();
  }
  if (backends.includes('cuda')) {
    const g = await loadGenerator(file, { device: 'cuda', batchSize: Math.max(...spec.cudaBatches) });
    try {
      for (const batch of onlyBatches ?? spec.cudaBatches) {
        const z = zFor(batch, cfg.z_dim);
        const genOpts = cfg.arch === 'progan' ? { z, output: 'float32' } : { z, psi: PSI, noiseMode: 'const', output: 'float32' };
        const [s] = await measure([{ name: 'facegan cuda', fn: () => g.generate(genOpts) }]);
        const orr = results.find((r) => r.model === spec.id && r.batch === batch && r.engine === 'onnxruntime-cpu');
        const r = {
          model: spec.id, batch, engine: 'facegan-cuda', threads: null,
          ms_per_call: s.mean * 1e3, ms_per_image: (s.mean * 1e3) / batch, images_per_s: batch / s.mean,
          median_ms_per_call: s.median * 1e3, min_ms_per_call: s.min * 1e3, rme_pct: s.rme, samples: s.n,
          samples_ms: s.sample.map((x) => Math.round(x * 1e4) / 10),
          ratio_vs_ort: orr ? orr.ms_per_call / (s.mean * 1e3) : null,
        };
        results.push(r);
        console.log(`  batch ${String(batch).padStart(2)}: facegan CUDA ${fmt(r.images_per_s, 2)} img/s (${fmt(r.ms_per_image, 2)} ms/img ±${fmt(s.rme)}%, n=${s.n})`);
      }
    } finally {
      g.dispose();
    }
  }
  return info;
}

function table(results) {
  const lines = [
    '| model | batch | engine | images/s | ms/image mean | ±rme | median | min | n | load (1 min) | facegan/ORT (means) | facegan/ORT (paired median) |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|',
  ];
  for (const r of results) {
    const ratio = (x) => (x == null ? '' : `${fmt(x, 2)}×`);
    lines.push(
      `| ${r.model} | ${r.batch} | ${r.engine} | ${fmt(r.images_per_s, 2)} | ${fmt(r.ms_per_image)} | ${fmt(r.rme_pct)}% | ` +
        `${fmt(r.median_ms_per_call / r.batch)} | ${fmt(r.min_ms_per_call / r.batch)} | ${r.samples} | ` +
        `${r.loadavg_1m ? r.loadavg_1m.map((x) => x.toFixed(1)).join('→') : ''} | ${ratio(r.ratio_vs_ort)} | ${ratio(r.ratio_vs_ort_paired_median)} |`,
    );
  }
  return lines.join('\n');
}

const BEGIN = '<!-- bench/run.js: ONNX Runtime baseline (begin) -->';
const END = '<!-- bench/run.js: ONNX Runtime baseline (end) -->';

function writeMarkdown(report) {
  const file = path.join(outDir, 'RESULTS.md');
  const m = report.machine;
  const p = report.provenance;
  const section = [
    BEGIN,
    '## facegan vs ONNX Runtime (CPU)',
    '',
    `Measured ${report.date} at commit \`${p.commit.slice(0, 12)}\`` +
      (p.modified_tracked_files.length ? ` (working tree modified: ${p.modified_tracked_files.map((f) => `\`${f}\``).join(', ')})` : '') +
      `; addon ${p.addon}${p.addon_mtime ? ` built ${p.addon_mtime}` : ''}, last native commit ${p.last_native_commit || 'n/a'}.`,
    '',
    `Machine: ${m.cpu} (${m.isa}), ${m.cores} cores, ${m.memory_gib} GiB, ${m.platform}; Node ${m.node}; onnxruntime-node ${m.onnxruntime_node}.`,
    `Threads: ${report.threads} (facegan \`threads\` = ORT \`intraOpNumThreads\`, ORT inter-op 1, sequential, all graph optimisations, intra-op spinning off so that neither engine's idle threads compete with the other's run).`,
    `Command: \`${report.command}\``,
    '',
    'One call: z [batch, 512] and psi 0.7 → float32 NCHW images with const noise. facegan: `gen.generate({ z, psi, noiseMode: \'const\', output: \'float32\' })`; ' +
      'ORT: the one-graph ONNX export (`buildOnnx`, opset 17) of the same weights. Calls alternate facegan/ORT (ABBA) after one warm-up each; ' +
      '±rme is the 95 % relative margin of error of the mean (benchmark.js definition); median and min are ms per image; ' +
      'load is the 1-minute load average before → after the measurement (above the thread count: other processes were competing for the cores, ' +
      'so absolute figures are pessimistic and min is the closest to an idle machine); facegan/ORT is the speed ratio (> 1: facegan faster), ' +
      'from the means and as the median of the ratios of back-to-back call pairs (more robust to load that changes during the run).',
    '',
    table(report.results),
    '',
    ...report.notes.map((n) => `- ${n}`),
    END,
  ].join('\n');
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmark results\n';
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) text = text.slice(0, a) + section + text.slice(b + END.length);
  else text = `${text.replace(/\s*$/, '')}\n\n${section}\n`;
  fs.writeFileSync(file, text);
}

async function main() {
  const { backends, unavailable } = availableBackends();
  const report = {
    date: new Date().toISOString(),
    quick,
    command: command(),
    threads,
    psi: PSI,
    noise_mode: 'const',
    timing: args.suite ? 'benchmark.js Suite (deferred)' : 'alternating calls (ABBA), benchmark.js statistics',
    min_samples: minSamples,
    max_time_s: maxTime,
    machine: machine(),
    provenance: provenance(),
    backends,
    models: {},
    results: [],
    notes: [],
  };
  if (!backends.includes('cuda')) report.notes.push(`facegan CUDA not measured: ${unavailable || 'no CUDA backend in this build'}`);
  const m = report.machine;
  console.log(`facegan vs onnxruntime-node ${m.onnxruntime_node} — ${m.cpu}, ${m.cores} cores, Node ${m.node}, threads ${threads}${quick ? ' (quick)' : ''}`);
  console.log(`commit ${report.provenance.commit.slice(0, 12)}${report.provenance.modified_tracked_files.length ? ' (modified tracked files)' : ''}, backends: ${backends.join(', ')}`);
  const tmpdir = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-bench-'));
  try {
    for (const spec of MODELS) {
      if (onlyModels && !onlyModels.includes(spec.id)) continue;
      const info = await benchModel(spec, backends, report.results, report.notes, tmpdir);
      if (info) report.models[spec.id] = { label: spec.label, ...info };
    }
  } finally {
    fs.rmSync(tmpdir, { recursive: true, force: true });
  }
  for (const spec of MODELS) {
    if (onlyModels && !onlyModels.includes(spec.id)) report.notes.push(`${spec.id}: not run (${quick && !args.models ? '--quick' : '--models'})`);
  }
  console.log(`\n${table(report.results)}\n`);
  for (const n of report.notes) console.log(`note: ${n}`);
  if (!args['no-write']) {
    const out = path.join(outDir, quick ? 'results-quick.json' : 'results.json');
    fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`wrote ${out}`);
    if (!quick) {
      writeMarkdown(report);
      console.log(`wrote ${path.join(outDir, 'RESULTS.md')} (section "facegan vs ONNX Runtime (CPU)")`);
    }
  }
}

await main();
