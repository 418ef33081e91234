#!/usr/bin/env node
/**
 * The abandoned-requests scenario of issue 12, on loopback: start `facegan serve`, time one request
 * alone, then open 30 requests and drop their connections after 0.5 s, and time the next request.
 * Before issue 12 the 30 still ran and the next request waited for all of them.
 *
 *   node bench/abandon.js [--cli dist/cli.js] [--port 18600]
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { cli: { type: 'string' }, port: { type: 'string' } } });
const cli = path.resolve(values.cli ?? path.join(root, 'dist', 'cli.js'));
const port = Number(values.port ?? 18600);

const child = spawn(process.execPath, [cli, 'serve', '--host', '127.0.0.1', '--port', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
try {
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => /serving/.test(String(d)) && resolve());
    child.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  const get = (p) =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      http
        .get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode, ms: performance.now() - t0 }));
        })
        .on('error', reject);
    });
  await get('/face.png?seed=1'); // warm-up
  const alone = await get('/face.png?seed=2');
  await Promise.all(
    Array.from(
      { length: 30 },
      (_, i) =>
        new Promise((resolve) => {
          const req = http.get({ host: '127.0.0.1', port, path: `/face.png?seed=${100 + i}`, agent: false });
          req.on('error', () => resolve());
          setTimeout(() => {
            req.destroy();
            resolve();
          }, 500);
        }),
    ),
  );
  const next = await get('/face.png?seed=3');
  console.log(`${path.relative(process.cwd(), cli) || cli}: one request alone ${alone.ms.toFixed(0)} ms; the next after 30 abandoned at 0.5 s: ${next.ms.toFixed(0)} ms (status ${next.status})`);
} finally {
  child.kill('SIGTERM');
}
