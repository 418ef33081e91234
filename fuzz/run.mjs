#!/usr/bin/env node
// The checkpoint fuzzer: mutates one base file of every format the loader reads (safetensors
// F32 and F16, StyleGAN2-ADA .pkl, TensorFlow .pkl, rosinality .pt, a TensorFlow.js graph model,
// the embedded default model) and loads each mutant in a child-process worker with the public
// API (loadGenerator → generate uint8 and float32 → mapping / synthesis).
//
// A mutant passes when it loads and gives finite images, or fails with a FaceganError of a file
// code (ERR_NATIVE does not count: a bad file must be caught before the engine). Everything else
// fails the run and leaves a reproducer (the mutant file and a .json describing it) in --out:
//   crash    the worker died (signal / exit)         hang    no answer within --timeout-ms
//   memory   the worker's RSS went over --mem-mb     untyped an Error that is not a FaceganError
//   native   ERR_NATIVE                              nan     a non-finite float32 image returned
//
//   node fuzz/run.mjs [--seed 13] [--count 3000 | --seconds 600] [--workers 2] [--timeout-ms 20000]
//                     [--mem-mb 1536] [--out build/fuzz-failures] [--formats a,b] [--only INDEX]
//                     [--self-test] [--json FILE]
//   node fuzz/run.mjs --file PATH     one file (e.g. a reproducer) through a worker: its outcome
//
// Needs the built library (dist/, `npm run build:ts`) and addon. Bases from ../shared/fixtures
// (FACEGAN_FIXTURES) are used when present; without them those formats are skipped with a
// warning (under CI=true the run fails instead). See docs/fuzzing.md.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { mutate, mutantSeed, rng } from './mutate.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv) {
  const o = { seed: 13, count: undefined, seconds: undefined, workers: 2, timeoutMs: 20000, memMb: 1536, out: path.join(root, 'build', 'fuzz-failures'), formats: undefined, only: undefined, selfTest: false, json: undefined, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--seed') o.seed = Number(next());
    else if (a === '--count') o.count = Number(next());
    else if (a === '--seconds') o.seconds = Number(next());
    else if (a === '--workers') o.workers = Number(next());
    else if (a === '--timeout-ms') o.timeoutMs = Number(next());
    else if (a === '--mem-mb') o.memMb = Number(next());
    else if (a === '--out') o.out = path.resolve(next());
    else if (a === '--formats') o.formats = next().split(',');
    else if (a === '--only') o.only = Number(next());
    else if (a === '--json') o.json = path.resolve(next());
    else if (a === '--self-test') o.selfTest = true;
    else if (a === '--file') o.file = path.resolve(next());
    else if (a === '--quiet') o.quiet = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (o.count === undefined && o.seconds === undefined) o.count = 3000;
  for (const k of ['seed', 'workers', 'timeoutMs', 'memMb']) if (!Number.isInteger(o[k]) || o[k] < 0) throw new Error(`--${k} must be an integer`);
  return o;
}

const FILE_CODES = ['ERR_FILE_NOT_FOUND', 'ERR_FILE_TOO_LARGE', 'ERR_UNKNOWN_FORMAT', 'ERR_CORRUPT_FILE', 'ERR_TRUNCATED_FILE', 'ERR_FORBIDDEN_GLOBAL', 'ERR_UNSUPPORTED_ARCH', 'ERR_INVALID_OPTION', 'ERR_NON_FINITE'];

/** The base files: [name, format, weight (share of mutants)]. */
async function loadBases(tmp) {
  const lib = await import(pathToFileURL(path.join(root, 'dist', 'index.js')).href);
  const fixtures = path.resolve(process.env.FACEGAN_FIXTURES ?? path.join(root, '..', 'shared', 'fixtures'));
  const bases = [];
  const missing = [];
  const file = (name, format, p, weight, ext) => {
    if (!fs.existsSync(p)) return missing.push(`${name} (${p})`);
    bases.push({ name, format, bytes: fs.readFileSync(p), weight, ext });
  };
  const gray = path.join(fixtures, 'gray16.pkl');
  if (fs.existsSync(gray)) {
    // safetensors bases, converted from a fixture pickle now (F32 and F16).
    const f32 = path.join(tmp, 'base-gray16.safetensors');
    const f16 = path.join(tmp, 'base-gray16-half.safetensors');
    await lib.convertCheckpoint(gray, f32);
    await lib.convertCheckpoint(path.join(fixtures, 'tiny32.pkl'), f16, { half: true });
    file('safetensors', 'safetensors', f32, 3, '.safetensors');
    file('safetensors-f16', 'safetensors', f16, 2, '.safetensors');
  } else missing.push(`safetensors (converted from ${gray})`);
  file('pkl', 'pickle', gray, 3, '.pkl');
  file('tf-pkl', 'pickle', path.join(fixtures, 'tiny32.tf.pkl'), 3, '.pkl');
  file('rosinality-pt', 'zip', path.join(root, 'test', 'fixtures', 'rosinality', 'tiny32-rosinality.pt'), 3, '.pt');
  // train.py form: g, d, optimiser states, args, no latent_avg (w_avg computed at load).
  file('rosinality-train-pt', 'zip', path.join(root, 'test', 'fixtures', 'rosinality', 'train16.pt'), 2, '.pt');
  const tfjs = path.join(root, 'test', 'fixtures', 'progan');
  const manifest = JSON.parse(fs.readFileSync(path.join(tfjs, 'tiny-model.json'), 'utf8'));
  const files = new Map([['model.json', fs.readFileSync(path.join(tfjs, 'tiny-model.json'))]]);
  for (const g of manifest.weightsManifest) for (const p of g.paths) files.set(p, fs.readFileSync(path.join(tfjs, p)));
  bases.push({ name: 'tfjs', format: 'tfjs', files, weight: 3, ext: '' });
  file('default-model', 'safetensors', lib.DEFAULT_MODEL, 0.15, '.safetensors');
  return { bases, missing };
}

/** Writes a mutant (a file, or a directory for tfjs) at `base` (a path without extension). */
function writeMutant(m, b, at) {
  if (m.files) {
    fs.rmSync(at, { recursive: true, force: true });
    fs.mkdirSync(at, { recursive: true });
    for (const [name, bytes] of m.files) fs.writeFileSync(path.join(at, name), bytes);
    return at;
  }
  const p = at + b.ext;
  fs.writeFileSync(p, m.bytes);
  return p;
}

function chooseBase(bases, r) {
  const total = bases.reduce((s, b) => s + b.weight, 0);
  let u = r() * total;
  for (const b of bases) {
    u -= b.weight;
    if (u < 0) return b;
  }
  return bases[bases.length - 1];
}

/** Mutant #index of the run: its base and bytes, from the seed alone. */
function makeMutant(bases, seed, index) {
  const r = rng(mutantSeed(seed, index));
  const base = chooseBase(bases, r);
  return { base, ...mutate(base, r) };
}

function rssMb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

class Worker {
  constructor(opts) {
    this.opts = opts;
    this.served = 0;
  }

  start() {
    this.child = fork(path.join(root, 'fuzz', 'worker.mjs'), [], {
      execArgv: [`--max-old-space-size=${Math.max(256, Math.floor(this.opts.memMb / 2))}`],
      env: { ...process.env, FACEGAN_FUZZ_ROOT: root, FACEGAN_FUZZ_CODES: JSON.stringify(FILE_CODES) },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
    });
    this.stderr = '';
    this.child.stderr.on('data', (d) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    this.ready = new Promise((resolve, reject) => {
      const onMsg = (m) => {
        if (m && m.ready) {
          this.child.off('message', onMsg);
          resolve();
        }
      };
      this.child.on('message', onMsg);
      this.child.once('exit', (code, sig) => reject(new Error(`worker exited before it was ready (${code ?? sig}): ${this.stderr}`)));
    });
    this.served = 0;
    return this.ready;
  }

  kill() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  /** Runs one job; resolves with the worker's report or { outcome: crash | hang | memory }. */
  run(job) {
    const child = this.child;
    this.served++;
    return new Promise((resolve) => {
      let done = false;
      const t0 = performance.now();
      let peak = 0;
      const finish = (res) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(poll);
        child.off('message', onMsg);
        child.off('exit', onExit);
        resolve({ ms: performance.now() - t0, peakMb: peak, ...res });
      };
      const onMsg = (m) => {
        if (m && m.id === job.id) finish(m);
      };
      const onExit = (code, sig) => finish({ outcome: 'crash', message: `worker exited (${sig ?? `code ${code}`})`, stack: this.stderr });
      const limit = this.opts.timeoutMs * (job.retry ? 3 : 1);
      const timer = setTimeout(() => {
        finish({ outcome: 'hang', message: `no answer within ${limit} ms${job.retry ? ' (twice: the second time with 3× the time)' : ''}` });
        this.kill();
      }, limit);
      const poll = setInterval(() => {
        const mb = rssMb(child.pid);
        peak = Math.max(peak, mb);
        const cap = job.mode === 'self-memory' ? 256 : this.opts.memMb; // the planted one: found fast
        if (mb > cap) {
          finish({ outcome: 'memory', message: `worker RSS ${mb.toFixed(0)} MB > ${cap} MB` });
          this.kill();
        }
      }, 25);
      child.on('message', onMsg);
      child.once('exit', onExit);
      child.send(job);
    });
  }
}

const FAILURES = new Set(['crash', 'hang', 'memory', 'untyped', 'native', 'nan']);

export async function fuzz(opts) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-fuzz-'));
  const t0 = performance.now();
  const stats = { seed: opts.seed, mutants: 0, outcomes: {}, codes: {}, byBase: {}, byKind: {}, failures: [], slowestMs: 0, peakRssMb: 0, retried: 0 };
  const log = (s) => opts.quiet || console.log(s);
  try {
    const { bases: all, missing } = await loadBases(tmp);
    if (missing.length) {
      const msg = `fuzz: base files missing, formats skipped: ${missing.join('; ')}`;
      if (process.env.CI === 'true' && !opts.selfTest) throw new Error(`${msg} (CI=true: a fuzz run must cover every format)`);
      console.warn(`!!!!!!!!!! ${msg}`);
    }
    const bases = opts.formats ? all.filter((b) => opts.formats.includes(b.name)) : all;
    if (bases.length === 0) throw new Error(`no base files (formats: ${opts.formats})`);
    log(`fuzz: seed ${opts.seed}, ${opts.count !== undefined ? `${opts.count} mutants` : `${opts.seconds} s`}, ${opts.workers} workers, timeout ${opts.timeoutMs} ms, memory cap ${opts.memMb} MB; bases: ${bases.map((b) => b.name).join(', ')}`);

    const jobs = [];
    if (opts.selfTest) {
      for (const mode of ['self-hang', 'self-crash', 'self-untyped', 'self-memory']) jobs.push({ mode });
      // and a real mutant whose run is made to fail: its reproducer must be written
      jobs.push({ index: 0, plant: true });
    }
    let next = opts.only ?? 0;
    const deadline = opts.seconds !== undefined ? t0 + opts.seconds * 1000 : Infinity;
    const haveMore = () => jobs.length > 0 || (opts.only !== undefined ? next === opts.only : (opts.count === undefined || next < opts.count) && performance.now() < deadline);
    const take = () => {
      if (jobs.length) return jobs.shift();
      return { index: next++ };
    };

    const workers = Array.from({ length: Math.max(1, opts.workers) }, () => new Worker(opts));
    await Promise.all(workers.map((w) => w.start()));
    let lastReport = performance.now();

    const loop = async (w, wi) => {
      while (haveMore()) {
        const job = take();
        let m;
        let file;
        let id;
        if (job.mode) {
          id = job.mode;
          file = '';
          m = { base: { name: 'self-test', format: 'none', ext: '' }, kind: job.mode, what: job.mode };
        } else {
          m = makeMutant(bases, opts.seed, job.index);
          id = `${job.index}`;
          file = writeMutant(m, m.base, path.join(tmp, `w${wi}-mutant`));
        }
        let res = await w.run({ id, path: file, mode: job.mode ?? 'load', plant: job.plant === true });
        if (res.outcome === 'hang' && !job.mode) {
          // A busy machine can starve a worker past the limit: a hang counts only when the same
          // mutant also times out in a fresh worker with three times the time.
          stats.retried++;
          w.kill();
          await w.start();
          res = await w.run({ id, path: file, mode: 'load', plant: job.plant === true, retry: true });
        }
        let outcome = res.outcome;
        if (outcome === 'typed' && res.code === 'ERR_NATIVE') outcome = 'native';
        if (outcome === 'untyped' && res.code === 'ERR_NATIVE') outcome = 'native';
        stats.mutants++;
        stats.outcomes[outcome] = (stats.outcomes[outcome] ?? 0) + 1;
        if (res.code) stats.codes[res.code] = (stats.codes[res.code] ?? 0) + 1;
        const bk = (stats.byBase[m.base.name] ??= {});
        bk[outcome] = (bk[outcome] ?? 0) + 1;
        const kk = (stats.byKind[m.kind] ??= {});
        kk[outcome] = (kk[outcome] ?? 0) + 1;
        stats.slowestMs = Math.max(stats.slowestMs, res.ms);
        stats.peakRssMb = Math.max(stats.peakRssMb, res.peakMb ?? 0);
        if (FAILURES.has(outcome)) {
          const rec = { index: job.index, seed: opts.seed, base: m.base.name, kind: m.kind, what: m.what, outcome, code: res.code, message: res.message, stack: res.stack, ms: Math.round(res.ms) };
          if (!job.mode || opts.keepSelfTest) {
            fs.mkdirSync(opts.out, { recursive: true });
            const stem = path.join(opts.out, `seed${opts.seed}-${job.mode ?? job.index}-${m.base.name}-${outcome}`);
            rec.reproducer = job.mode ? null : writeMutant(m, m.base, stem);
            rec.report = `${stem}.json`;
            fs.writeFileSync(rec.report, JSON.stringify({ ...rec, rerun: `node fuzz/run.mjs --seed ${opts.seed} --only ${job.index}`, replay: rec.reproducer ? `node fuzz/run.mjs --file ${rec.reproducer}` : undefined }, null, 2));
          }
          if (job.plant) rec.planted = true;
          stats.failures.push(rec);
          log(`FAIL ${outcome} mutant ${job.mode ?? job.index} (${m.base.name}, ${m.what}): ${res.message}`);
          if (outcome === 'crash' || outcome === 'hang' || outcome === 'memory') {
            w.kill();
            await w.start();
          }
        }
        if (w.served >= 400) {
          // a fresh worker now and then: one mutant's leftovers never weigh on the next ones
          w.kill();
          await w.start();
        }
        if (performance.now() - lastReport > 10000) {
          lastReport = performance.now();
          log(`  … ${stats.mutants} mutants, ${((performance.now() - t0) / 1000).toFixed(0)} s, ${stats.failures.length} failures`);
        }
      }
    };
    await Promise.all(workers.map((w, i) => loop(w, i)));
    for (const w of workers) w.kill();
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  stats.seconds = (performance.now() - t0) / 1000;
  return stats;
}

function summary(stats) {
  const lines = [];
  lines.push(`fuzz: ${stats.mutants} mutants in ${stats.seconds.toFixed(1)} s (seed ${stats.seed}); slowest ${stats.slowestMs.toFixed(0)} ms, peak worker RSS ${stats.peakRssMb.toFixed(0)} MB`);
  lines.push(`  outcomes: ${JSON.stringify(stats.outcomes)}`);
  lines.push(`  codes:    ${JSON.stringify(stats.codes)}`);
  for (const [b, o] of Object.entries(stats.byBase)) lines.push(`  ${b.padEnd(16)} ${JSON.stringify(o)}`);
  for (const [k, o] of Object.entries(stats.byKind)) lines.push(`  ${k.padEnd(16)} ${JSON.stringify(o)}`);
  lines.push(`  failures: ${stats.failures.length} (crash, hang, memory, untyped, native, nan); ${stats.retried} timeouts retried`);
  return lines.join('\n');
}

/** One file through a worker, as a mutant would go: prints the outcome; exit 1 when it is a failure. */
async function replay(opts) {
  const w = new Worker(opts);
  await w.start();
  const res = await w.run({ id: 'file', path: opts.file, mode: 'load' });
  w.kill();
  const outcome = res.code === 'ERR_NATIVE' ? 'native' : res.outcome;
  console.log(JSON.stringify({ file: opts.file, outcome, code: res.code, message: res.message, ms: Math.round(res.ms), peakMb: Math.round(res.peakMb) }, null, 2));
  return FAILURES.has(outcome) ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`fuzz: ${err.message}`);
    process.exit(2);
  }
  if (opts.file) process.exit(await replay(opts));
  const stats = await fuzz(opts);
  console.log(summary(stats));
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(stats, null, 2));
  if (opts.selfTest) {
    // The four planted failures must be caught, and nothing else may fail.
    const want = { 'self-hang': 'hang', 'self-crash': 'crash', 'self-untyped': 'untyped', 'self-memory': 'memory' };
    const got = Object.fromEntries(stats.failures.filter((f) => f.base === 'self-test').map((f) => [f.what, f.outcome]));
    const planted = stats.failures.find((f) => f.planted);
    const ok = Object.entries(want).every(([k, v]) => got[k] === v) && planted?.outcome === 'untyped' && fs.existsSync(planted.reproducer) &&
      fs.existsSync(planted.report);
    console.log(`self-test: planted failures ${ok ? 'all caught, reproducer written' : `NOT all caught: ${JSON.stringify(got)} ${JSON.stringify(planted)}`}`);
    const real = stats.failures.filter((f) => f.base !== 'self-test' && !f.planted).length;
    process.exit(ok && real === 0 ? 0 : 1);
  }
  if (stats.failures.length) console.log(`reproducers in ${opts.out}`);
  process.exit(stats.failures.length ? 1 : 0);
}
