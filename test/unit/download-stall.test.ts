/**
 * A download that stalls — a server that accepts and sends nothing, or stops sending mid-body —
 * fails with a typed error after `stallTimeoutMs` instead of hanging; a slow download that keeps
 * moving does not. And pullModel prints nothing itself (the licence goes to `log`, the CLI's).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { licences, pullModel, type CatalogEntry } from '../../lib/catalog.js';
import { downloadFile } from '../../lib/download.js';
import { FaceganError } from '../../lib/errors.js';

const body = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) & 255));
let server: http.Server;
let base: string;
let dir: string;
const requests: string[] = [];
const open = new Set<http.ServerResponse>();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    requests.push(`${req.url} ${req.headers.range ?? ''}`.trim());
    open.add(res);
    res.on('close', () => open.delete(res));
    if (req.url === '/silent') return; // accepts, never answers
    if (req.url === '/stall-mid') {
      // First request: headers and 1000 of 5000 bytes, then nothing. A resume (Range) completes.
      const range = /bytes=(\d+)-/.exec(req.headers.range ?? '');
      if (range) {
        const start = Number(range[1]);
        res.writeHead(206, { 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` });
        return res.end(body.subarray(start));
      }
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, 1000));
      return;
    }
    if (req.url === '/slow') {
      // 10 pieces, one every 80 ms: never a 300 ms gap, 720 ms in all.
      res.writeHead(200, { 'content-length': body.length });
      let i = 0;
      const t = setInterval(() => {
        res.write(body.subarray(i * 500, (i + 1) * 500));
        if (++i === 10) {
          clearInterval(t);
          res.end();
        }
      }, 80);
      return;
    }
    if (req.url === '/model.pkl') {
      res.writeHead(200, { 'content-length': body.length });
      return res.end(body);
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const res of open) res.destroy();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-stall-'));
  requests.length = 0;
});

async function failure(p: Promise<unknown>): Promise<FaceganError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(FaceganError);
    return err as FaceganError;
  }
  throw new Error('expected the download to fail');
}

describe('stalled downloads', () => {
  it('a server that accepts and sends nothing: ERR_DOWNLOAD after stallTimeoutMs, cause ETIMEDOUT', async () => {
    const t0 = Date.now();
    const err = await failure(downloadFile(`${base}/silent`, path.join(dir, 'x.bin'), { stallTimeoutMs: 300 }));
    const ms = Date.now() - t0;
    expect(err.code).toBe('ERR_DOWNLOAD');
    expect(err.message).toBe(`The download of ${base}/silent stalled: nothing arrived for 0.3 s (stallTimeoutMs).`);
    expect((err.cause as { code?: string }).code).toBe('ETIMEDOUT');
    expect(ms).toBeGreaterThanOrEqual(280);
    expect(ms).toBeLessThan(3000);
    expect(fs.existsSync(path.join(dir, 'x.bin'))).toBe(false);
  });

  it('a body that stops: ERR_DOWNLOAD naming the bytes received; the .part is kept and a retry resumes it', async () => {
    const dest = path.join(dir, 'y.bin');
    const err = await failure(downloadFile(`${base}/stall-mid`, dest, { stallTimeoutMs: 300 }));
    expect(err.code).toBe('ERR_DOWNLOAD');
    expect(err.message).toMatch(/stalled: nothing arrived for 0\.3 s .*Got 1000 of 5000 bytes; the partial file .*y\.bin\.part is kept/);
    expect(fs.statSync(`${dest}.part`).size).toBe(1000);

    requests.length = 0;
    const sha256 = createHash('sha256').update(body).digest('hex');
    const done = await downloadFile(`${base}/stall-mid`, dest, { stallTimeoutMs: 300, sha256 });
    expect(requests).toEqual(['/stall-mid bytes=1000-']);
    expect(done).toMatchObject({ bytes: 5000, resumed: true, sha256 });
    expect(fs.readFileSync(dest).equals(body)).toBe(true);
  });

  it('with retries, a stall is retried automatically and resumes', async () => {
    const dest = path.join(dir, 'z.bin');
    const done = await downloadFile(`${base}/stall-mid`, dest, { stallTimeoutMs: 300, retries: 1, retryDelayMs: 0 });
    expect(requests).toEqual(['/stall-mid', '/stall-mid bytes=1000-']);
    expect(done.bytes).toBe(5000);
  });

  it('a slow download that keeps moving is not cut off (the watchdog restarts on every chunk)', async () => {
    const done = await downloadFile(`${base}/slow`, path.join(dir, 's.bin'), { stallTimeoutMs: 300 });
    expect(done.bytes).toBe(5000);
  });

  it('stallTimeoutMs is checked', async () => {
    for (const bad of [-1, Number.NaN, '10', Infinity]) {
      const err = await failure(downloadFile(`${base}/slow`, path.join(dir, 'q.bin'), { stallTimeoutMs: bad as number }));
      expect(err.code).toBe('ERR_INVALID_OPTION');
      expect(err.message).toMatch(/stallTimeoutMs/);
    }
  });
});

describe('pullModel prints nothing itself', () => {
  it('the licence goes to log (when given), never to stderr or stdout', async () => {
    const entry: CatalogEntry = {
      id: 'stall-test',
      title: 'Test model',
      url: `${base}/model.pkl`,
      resolution: 32,
      cDim: 0,
      bytes: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      licence: licences.stylegan2Ada,
      source: { url: 'https://example.invalid', citation: 'test' },
    };
    const convert = async (_src: string, dst: string): Promise<void> => fs.writeFileSync(dst, 'converted');
    const err = vi.spyOn(process.stderr, 'write');
    const out = vi.spyOn(process.stdout, 'write');
    try {
      await pullModel(entry, { cacheDir: path.join(dir, 'a'), convert });
      expect(err).not.toHaveBeenCalled();
      expect(out).not.toHaveBeenCalled();
      const messages: string[] = [];
      await pullModel(entry, { cacheDir: path.join(dir, 'b'), convert, log: (m) => messages.push(m) });
      expect(messages[0]).toMatch(/NON-COMMERCIAL USE ONLY/);
      expect(err).not.toHaveBeenCalled();
    } finally {
      err.mockRestore();
      out.mockRestore();
    }
  });
});
