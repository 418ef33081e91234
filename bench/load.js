#!/usr/bin/env node
/**
 * Load test of `facegan serve` on loopback: N concurrent clients for a fixed time against the
 * default model (the embedded ProGAN-128), with the server in its own process so its memory can
 * be watched.
 *
 *   node bench/load.js                         # 64 clients, 60 s; writes a section of bench/RESULTS.md
 *   node bench/load.js --ci                    # 64 clients, 15 s, no file written; exit 1 on failure
 *   node bench/load.js [--clients 64] [--duration 60] [--warmup 5] [--path /face.png]
 *                      [--max-rss-growth-mib 64] [--server-args "--max-queue 32"] [--no-write] [--json FILE]
 *                      [--baseline FILE]   (a --json of another build's run, shown as "before" in RESULTS.md)
 *
 * Each client loops: GET <path>?seed=<random> on a keep-alive connection; on a 503 it waits what
 * Retry-After says (±50 % jitter, as a well-behaved client does) and goes on. Bounded: a fixed
 * time and at most 64 × duration × 50 requests; 127.0.0.1 only. Before measuring, a warm-up at
 * the same concurrency brings the engine to its largest batch.
 *
 * Reported: completed requests per second (200s), p50 / p90 / p99 latency of 200s and of 503s,
 * counts of 200 / 503 / other statuses / transport errors, and the server's RSS (VmRSS) at the
 * start of the measurement, in the middle and at the end (sampled every second).
 *
 * Fails (exit 1) when any response is neither 200 nor 503, when any request errors, when no 200
 * at all, or when RSS grows by more than --max-rss-growth-mib between start and end of the
 * measurement.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    ci: { type: 'boolean' },
    clients: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    path: { type: 'string' },
    'max-rss-growth-mib': { type: 'string' },
    'server-args': { type: 'string' },
    'no-write': { type: 'boolean' },
    json: { type: 'string' },
    baseline: { type: 'string' },
  },
});
const clients = Number(opt.clients ?? 64);
const duration = Number(opt.duration ?? (opt.ci ? 15 : 60));
const warmup = Number(opt.warmup ?? (opt.ci ? 3 : 5));
const reqPath = opt.path ?? '/face.png';
const maxGrowthMiB = Number(opt['max-rss-growth-mib'] ?? 64);
const serverArgs = (opt['server-args'] ?? '').split(/\s+/).filter(Boolean);
const write = !opt.ci && !opt['no-write'];
if (!(clients >= 1 && clients <= 256 && duration >= 1 && duration <= 600 && warmup >= 0 && warmup <= 60)) {
  console.error('bench/load.js: clients in [1, 256], duration in [1, 600] s, warmup in [0, 60] s');
  process.exit(2);
}
const MAX_REQUESTS = clients * duration * 50;

const cli = path.join(root, 'dist', 'cli.js');
if (!fs.existsSync(cli)) {
  console.error('bench/load.js: dist/ is not built (npm run build:ts)');
  process.exit(2);
}

function rssMiB(pid) {
  if (fs.existsSync(`/proc/${pid}/status`)) {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) / 1024;
  }
  return Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).trim()) / 1024; // macOS
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startServer() {
  const child = spawn(process.execPath, [cli, 'serve', '--host', '127.0.0.1', '--port', '0', ...serverArgs], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const base = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 60_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /on (http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
  child.stdout.on('data', (d) => (out += d));
  return { child, base, output: () => out };
}

/** Runs `clients` loops until `until`; returns per-status latencies. */
async function load(base, until, record) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const url = new URL(base);
  let sent = 0;
  const one = () =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const seed = Math.floor(Math.random() * 2 ** 32);
      const req = http.get({ host: '127.0.0.1', port: url.port, path: `${reqPath}?seed=${seed}`, agent }, (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve({ status: res.statusCode, ms: performance.now() - t0, retryAfter: Number(res.headers['retry-after'] ?? 0) }));
        res.on('error', (e) => resolve({ status: 'error', ms: performance.now() - t0, error: e.message }));
      });
      req.setTimeout(60_000, () => req.destroy(new Error('client timeout (60 s)')));
      req.on('error', (e) => resolve({ status: 'error', ms: performance.now() - t0, error: e.message }));
    });
  const loop = async () => {
    while (Date.now() < until && sent < MAX_REQUESTS) {
      sent++;
      const r = await one();
      record(r);
      if (r.status === 503) await sleep(Math.min(5, r.retryAfter || 1) * 1000 * (0.5 + Math.random()));
    }
  };
  await Promise.all(Array.from({ length: clients }, loop));
  agent.destroy();
}

async function main() {
  const { child, base, output } = await startServer();
  const pid = child.pid;
  try {
    console.log(`server ${base} (pid ${pid}); warm-up ${warmup} s with ${clients} clients`);
    await load(base, Date.now() + warmup * 1000, () => {});
    const rss = { start: rssMiB(pid), samples: [] };
    const byStatus = new Map();
    const errors = [];
    const record = (r) => {
      const key = String(r.status);
      if (!byStatus.has(key)) byStatus.set(key, []);
      byStatus.get(key).push(r.ms);
      if (r.error && errors.length < 5) errors.push(r.error);
    };
    console.log(`measuring ${duration} s: ${clients} clients, GET ${reqPath}?seed=<random>`);
    const t0 = Date.now();
    const loadBefore = os.loadavg()[0];
    const sampler = setInterval(() => rss.samples.push({ t: (Date.now() - t0) / 1000, mib: rssMiB(pid) }), 1000);
    let middle;
    const midTimer = setTimeout(() => (middle = rssMiB(pid)), (duration * 1000) / 2);
    await load(base, t0 + duration * 1000, record);
    clearInterval(sampler);
    clearTimeout(midTimer);
    const elapsed = (Date.now() - t0) / 1000;
    rss.middle = middle ?? rssMiB(pid);
    rss.end = rssMiB(pid);
    rss.max = Math.max(rss.start, rss.end, ...rss.samples.map((s) => s.mib));
    // Engine counters (a server without /readyz, e.g. an older build measured as a baseline, has none).
    const ready = await fetch(`${base}/readyz`).then(
      (r) => r.json(),
      () => ({}),
    );
    const batches = ready.batches ?? { batches: NaN, images: NaN, largestBatch: NaN, dropped: NaN };

    const stats = (key) => {
      const ms = (byStatus.get(key) ?? []).slice().sort((a, b) => a - b);
      return { count: ms.length, p50: percentile(ms, 50), p90: percentile(ms, 90), p99: percentile(ms, 99), max: ms[ms.length - 1] ?? NaN };
    };
    const ok = stats('200');
    const busy = stats('503');
    const other = [...byStatus.entries()].filter(([k]) => k !== '200' && k !== '503' && k !== 'error');
    const otherCount = other.reduce((s, [, v]) => s + v.length, 0);
    const errorCount = byStatus.get('error')?.length ?? 0;
    const growth = rss.end - rss.start;
    const result = {
      date: new Date().toISOString(),
      machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, node: process.version },
      loadavg_1min: { before: loadBefore, after: os.loadavg()[0] },
      clients,
      duration_s: elapsed,
      path: reqPath,
      server_args: serverArgs,
      throughput_rps: ok.count / elapsed,
      ok,
      busy,
      other: Object.fromEntries(other.map(([k, v]) => [k, v.length])),
      errors: { count: errorCount, examples: errors },
      rss_mib: { start: rss.start, middle: rss.middle, end: rss.end, max: rss.max, growth },
      batches,
    };
    const f = (x) => (Number.isFinite(x) ? x.toFixed(0) : '–');
    console.log(
      [
        `throughput: ${result.throughput_rps.toFixed(1)} faces/s (${ok.count} × 200 in ${elapsed.toFixed(1)} s)`,
        `200: ${ok.count}  p50 ${f(ok.p50)} ms  p90 ${f(ok.p90)} ms  p99 ${f(ok.p99)} ms  max ${f(ok.max)} ms`,
        `503: ${busy.count}  p50 ${f(busy.p50)} ms  p99 ${f(busy.p99)} ms`,
        `other statuses: ${otherCount} ${JSON.stringify(result.other)}; transport errors: ${errorCount} ${errors.join('; ')}`,
        `server RSS MiB: start ${rss.start.toFixed(0)}, middle ${rss.middle.toFixed(0)}, end ${rss.end.toFixed(0)}, max ${rss.max.toFixed(0)} (growth ${growth.toFixed(1)}, bound ${maxGrowthMiB})`,
        `engine: ${batches.batches} batches, ${batches.images} images, largest ${batches.largestBatch}, ${batches.dropped} dropped`,
      ].join('\n'),
    );
    const failures = [];
    if (otherCount > 0) failures.push(`${otherCount} responses neither 200 nor 503`);
    if (errorCount > 0) failures.push(`${errorCount} transport errors`);
    if (ok.count === 0) failures.push('no 200 at all');
    if (growth > maxGrowthMiB) failures.push(`RSS grew by ${growth.toFixed(1)} MiB (> ${maxGrowthMiB})`);
    result.failures = failures;
    if (opt.json) fs.writeFileSync(opt.json, JSON.stringify(result, null, 2));
    if (write) writeMarkdown(result);
    // Graceful shutdown under the tail of the load: must exit 0.
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.on('exit', (c) => r(c)));
    if (code !== 0) failures.push(`server exited with ${code} after SIGTERM: ${output().slice(-500)}`);
    if (failures.length > 0) {
      console.error(`LOAD TEST FAILED: ${failures.join('; ')}`);
      process.exitCode = 1;
    } else {
      console.log('load test passed (only 200 and 503, memory flat, clean shutdown)');
    }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

const BEGIN = '<!-- bench/load.js: load test (begin) -->';
const END = '<!-- bench/load.js: load test (end) -->';

function writeMarkdown(r) {
  const file = path.join(root, 'bench', 'RESULTS.md');
  const f = (x) => (Number.isFinite(x) ? x.toFixed(0) : '–');
  const base = opt.baseline ? JSON.parse(fs.readFileSync(opt.baseline, 'utf8')) : undefined;
  const baseRows = base
    ? [
        `| before: 200 | ${base.ok.count} | ${f(base.ok.p50)} | ${f(base.ok.p90)} | ${f(base.ok.p99)} | ${f(base.ok.max)} |`,
        `| before: 503 | ${base.busy.count} | ${f(base.busy.p50)} | ${f(base.busy.p90)} | ${f(base.busy.p99)} | ${f(base.busy.max)} |`,
        `| before: other status / transport error | ${Object.values(base.other).reduce((a, b) => a + b, 0)} / ${base.errors.count} | | | | |`,
      ]
    : [];
  const section = [
    BEGIN,
    '## Load test: `facegan serve` under 64 concurrent clients',
    '',
    `Measured ${r.date} with \`node bench/load.js\` on ${r.machine.cpu}, ${r.machine.cores} cores, Node ${r.machine.node}: ` +
      `the default model (embedded ProGAN-128, CPU), server in its own process on 127.0.0.1 with default settings ` +
      `(queue of 32, 5 s queue time limit, micro-batching up to the batch size and 250 ms per gathered engine call)${r.server_args.length ? ` and \`${r.server_args.join(' ')}\`` : ''}; ` +
      `${r.clients} clients, each looping \`GET ${r.path}?seed=<random>\` on a keep-alive connection and waiting out Retry-After on a 503; ` +
      `${r.duration_s.toFixed(0)} s measured after a warm-up. The load generator shares the machine's cores with the server; ` +
      `1-minute load average ${r.loadavg_1min.before.toFixed(2)} before → ${r.loadavg_1min.after.toFixed(2)} after (above 2, the number of cores, other jobs were competing for them: absolute figures are pessimistic).`,
    '',
    '| | count | p50 ms | p90 ms | p99 ms | max ms |',
    '|---|---:|---:|---:|---:|---:|',
    `| 200 | ${r.ok.count} | ${f(r.ok.p50)} | ${f(r.ok.p90)} | ${f(r.ok.p99)} | ${f(r.ok.max)} |`,
    `| 503 (Retry-After) | ${r.busy.count} | ${f(r.busy.p50)} | ${f(r.busy.p90)} | ${f(r.busy.p99)} | ${f(r.busy.max)} |`,
    `| other status / transport error | ${Object.values(r.other).reduce((a, b) => a + b, 0)} / ${r.errors.count} | | | | |`,
    ...baseRows,
    '',
    ...(base
      ? [
          `"before" is the server as it was before issue 12 (commit 6e4109d: every request alone, no cancellation, no queue time limit), ` +
            `measured the same way just before (${base.duration_s.toFixed(0)} s, 1-minute load average ${base.loadavg_1min.before.toFixed(2)} → ${base.loadavg_1min.after.toFixed(2)}): ` +
            `${base.throughput_rps.toFixed(1)} faces/s, server RSS ${base.rss_mib.start.toFixed(0)} → ${base.rss_mib.middle.toFixed(0)} → ${base.rss_mib.end.toFixed(0)} MiB.`,
          '',
        ]
      : []),
    `- Throughput: **${r.throughput_rps.toFixed(1)} faces/s** served (200s).`,
    `- Engine: ${r.batches.batches} engine calls for ${r.batches.images} images (largest batch ${r.batches.largestBatch}); ${r.batches.dropped} requests dropped before running (client gone or queue time limit).`,
    `- Server RSS: start ${r.rss_mib.start.toFixed(0)} MiB, middle ${r.rss_mib.middle.toFixed(0)} MiB, end ${r.rss_mib.end.toFixed(0)} MiB (max ${r.rss_mib.max.toFixed(0)}; growth ${r.rss_mib.growth.toFixed(1)} MiB; the CI bound is 64 MiB).`,
    `- Micro-batching on this CPU: an image costs the engine about the same alone or in a batch, so the 250 ms budget per gathered call (\`maxBatchMs\`) keeps batches at the few images the engine runs in that time (1 while other jobs load the machine); memory then stays where the unbatched server's is. On CUDA, where a batch costs little more than one image, gathered calls fill up to \`batchSize\`.`,
    `- Before this work (issue 12): every request ran alone and waited its turn; with 64 clients and the queue of 32, 200s took 12–29 s, and requests whose clients had gone still ran. Now a 200 waits at most the 5 s queue limit plus one engine call, a client that leaves is dropped before it runs, and the rest are told to come back (503 + Retry-After).`,
    `- CI (\`.ci/run\`) runs \`node bench/load.js --ci\` (64 clients, 15 s) and fails on any status other than 200/503, any transport error, or RSS growth above 64 MiB.`,
    END,
  ].join('\n');
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmark results\n';
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) text = text.slice(0, a) + section + text.slice(b + END.length);
  else text = `${text.replace(/\s*$/, '')}\n\n${section}\n`;
  fs.writeFileSync(file, text);
  console.log(`wrote ${file} (section "Load test")`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
