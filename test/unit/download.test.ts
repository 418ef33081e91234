import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { downloadFile, formatBytes, progressBar, type DownloadProgress } from '../../lib/download.js';
import { FaceganError } from '../../lib/errors.js';

// Everything here talks to a server on 127.0.0.1 started by this file; nothing leaves the machine.

const SIZE = 300_000;
const content = randomBytes(SIZE);
const sha = createHash('sha256').update(content).digest('hex');

interface Seen {
  path: string;
  range: string | undefined;
  acceptEncoding: string | undefined;
}

let server: http.Server;
let base: string;
let seen: Seen[] = [];
/** When set, the next response to /file writes this many body bytes, then destroys the socket. */
let cutNextAfter: number | undefined;
/** When set, /flaky answers 500 this many more times. */
let flakyFailures = 0;
let dir: string;

function sendRange(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, honourRange = true): void {
  const match = honourRange ? /^bytes=(\d+)-$/.exec(req.headers.range ?? '') : null;
  let start = 0;
  if (match) {
    start = Number(match[1]);
    if (start >= body.length) {
      res.writeHead(416, { 'content-range': `bytes */${body.length}` });
      res.end();
      return;
    }
    res.writeHead(206, {
      'content-length': body.length - start,
      'content-range': `bytes ${start}-${body.length - 1}/${body.length}`,
      'accept-ranges': 'bytes',
    });
  } else {
    res.writeHead(200, { 'content-length': body.length, 'accept-ranges': honourRange ? 'bytes' : 'none' });
  }
  const rest = body.subarray(start);
  if (cutNextAfter !== undefined) {
    const n = cutNextAfter;
    cutNextAfter = undefined;
    // Give the client time to take the bytes in: a fetch body stream that errors drops chunks it has queued.
    res.write(rest.subarray(0, n), () => setTimeout(() => res.socket?.destroy(), 50));
    return;
  }
  res.end(rest);
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    seen.push({ path: url.pathname, range: req.headers.range, acceptEncoding: req.headers['accept-encoding'] });
    switch (url.pathname) {
      case '/file':
        return sendRange(req, res, content);
      case '/norange':
        return sendRange(req, res, content, false);
      case '/corrupt': {
        const bad = Buffer.from(content);
        bad[1234] ^= 0xff;
        return sendRange(req, res, bad);
      }
      case '/chunked': // no Content-Length, and shorter than the real file
        res.writeHead(200, { 'transfer-encoding': 'chunked' });
        return res.end(content.subarray(0, SIZE - 10));
      case '/badrange': // answers every Range with bytes from 0
        if (req.headers.range) {
          res.writeHead(206, { 'content-length': SIZE, 'content-range': `bytes 0-${SIZE - 1}/${SIZE}` });
          return res.end(content);
        }
        return sendRange(req, res, content, false);
      case '/flaky':
        if (flakyFailures > 0) {
          flakyFailures--;
          res.writeHead(500, 'Internal Server Error');
          return res.end('oops');
        }
        return sendRange(req, res, content);
      case '/slow': // 64 KiB, then nothing: the body never ends
        res.writeHead(200, { 'content-length': SIZE });
        res.write(content.subarray(0, 65536));
        return;
      case '/hang': // never even sends headers
        return;
      case '/500':
        res.writeHead(500, 'Internal Server Error');
        return res.end('oops');
      default:
        res.writeHead(404, 'Not Found');
        return res.end('no such file');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-download-'));
  seen = [];
  cutNextAfter = undefined;
  flakyFailures = 0;
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

async function rejection(promise: Promise<unknown>): Promise<FaceganError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(FaceganError);
    return error as FaceganError;
  }
  throw new Error('expected a rejection');
}

describe('downloadFile', () => {
  it('downloads a whole file with progress events', async () => {
    const dest = path.join(dir, 'sub', 'dir', 'model.pkl');
    const events: DownloadProgress[] = [];
    const result = await downloadFile(`${base}/file`, dest, {
      expectedBytes: SIZE,
      sha256: sha,
      onProgress: (p) => events.push({ ...p }),
    });
    expect(result).toEqual({ path: dest, bytes: SIZE, sha256: sha, skipped: false, resumed: false });
    expect(fs.readFileSync(dest).equals(content)).toBe(true);
    expect(fs.existsSync(`${dest}.part`)).toBe(false);
    expect(seen).toEqual([{ path: '/file', range: undefined, acceptEncoding: 'identity' }]);
    expect(events.length).toBeGreaterThan(2);
    expect(events[0]).toEqual({ downloadedSize: 0, totalSize: SIZE });
    expect(events.at(-1)).toEqual({ downloadedSize: SIZE, totalSize: SIZE });
    for (let i = 1; i < events.length; i++) expect(events[i]!.downloadedSize).toBeGreaterThanOrEqual(events[i - 1]!.downloadedSize);
  });

  it('keeps the .part of an interrupted download and resumes it with a Range request', async () => {
    const dest = path.join(dir, 'model.pkl');
    cutNextAfter = 100_000;
    const error = await rejection(downloadFile(`${base}/file`, dest, { expectedBytes: SIZE, sha256: sha }));
    expect(error.code).toBe('ERR_DOWNLOAD');
    expect(error.message).toMatch(/Connection lost while downloading .* after \d+ of 300000 bytes.*call again to resume/);
    expect(fs.existsSync(dest)).toBe(false);
    const kept = fs.statSync(`${dest}.part`).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(100_000);
    expect(fs.readFileSync(`${dest}.part`).equals(content.subarray(0, kept))).toBe(true);

    const events: DownloadProgress[] = [];
    const result = await downloadFile(`${base}/file`, dest, {
      expectedBytes: SIZE,
      sha256: sha,
      onProgress: (p) => events.push({ ...p }),
    });
    expect(seen.at(-1)).toEqual({ path: '/file', range: `bytes=${kept}-`, acceptEncoding: 'identity' }); // fetch adds identity to Range requests
    expect(result).toMatchObject({ bytes: SIZE, sha256: sha, resumed: true, skipped: false });
    expect(events[0]).toEqual({ downloadedSize: kept, totalSize: SIZE });
    expect(fs.readFileSync(dest).equals(content)).toBe(true);
    expect(fs.existsSync(`${dest}.part`)).toBe(false);
  });

  it('resumes by itself when retries allow it', async () => {
    const dest = path.join(dir, 'model.pkl');
    cutNextAfter = 50_000;
    const result = await downloadFile(`${base}/file`, dest, { expectedBytes: SIZE, sha256: sha, retries: 2, retryDelayMs: 0 });
    expect(result.resumed).toBe(true);
    expect(seen).toHaveLength(2);
    expect(seen[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(fs.readFileSync(dest).equals(content)).toBe(true);
  });

  it('retries HTTP 5xx when retries allow it', async () => {
    flakyFailures = 1;
    const dest = path.join(dir, 'model.pkl');
    await downloadFile(`${base}/flaky`, dest, { sha256: sha, retries: 1, retryDelayMs: 0 });
    expect(seen).toHaveLength(2);
    expect(fs.readFileSync(dest).equals(content)).toBe(true);
  });

  it('starts again from zero when the server ignores Range (200 instead of 206)', async () => {
    const dest = path.join(dir, 'model.pkl');
    fs.writeFileSync(`${dest}.part`, Buffer.alloc(5000, 7)); // garbage that a resume would keep
    const result = await downloadFile(`${base}/norange`, dest, { expectedBytes: SIZE, sha256: sha });
    expect(seen[0]!.range).toBe('bytes=5000-');
    expect(result.resumed).toBe(false);
    expect(fs.readFileSync(dest).equals(content)).toBe(true);
  });

  it('starts again from zero when a 206 does not start where it was asked to', async () => {
    const dest = path.join(dir, 'model.pkl');
    fs.writeFileSync(`${dest}.part`, content.subarray(0, 1000));
    await downloadFile(`${base}/badrange`, dest, { sha256: sha });
    expect(seen.map((s) => s.range)).toEqual(['bytes=1000-', undefined]);
    expect(fs.readFileSync(dest).equals(content)).toBe(true);
  });

  it('treats 416 on a complete .part as done, and on a stale longer one restarts', async () => {
    const dest = path.join(dir, 'a.pkl');
    fs.writeFileSync(`${dest}.part`, content);
    const done = await downloadFile(`${base}/file`, dest, { sha256: sha });
    expect(seen.map((s) => s.range)).toEqual([`bytes=${SIZE}-`]);
    expect(done).toMatchObject({ resumed: true, bytes: SIZE });
    expect(fs.readFileSync(dest).equals(content)).toBe(true);

    seen = [];
    const dest2 = path.join(dir, 'b.pkl');
    fs.writeFileSync(`${dest2}.part`, Buffer.concat([content, content.subarray(0, 10)]));
    await downloadFile(`${base}/file`, dest2);
    expect(seen.map((s) => s.range)).toEqual([`bytes=${SIZE + 10}-`, undefined]);
    expect(fs.readFileSync(dest2).equals(content)).toBe(true);
  });

  it('finishes a .part that already has every byte without asking the server', async () => {
    const dest = path.join(dir, 'model.pkl');
    fs.writeFileSync(`${dest}.part`, content);
    const result = await downloadFile(`${base}/file`, dest, { expectedBytes: SIZE, sha256: sha });
    expect(seen).toHaveLength(0);
    expect(result).toMatchObject({ resumed: true, skipped: false, sha256: sha });
    expect(fs.readFileSync(dest).equals(content)).toBe(true);
  });

  it('rejects corrupted bytes (sha256 mismatch) and leaves no file behind', async () => {
    const dest = path.join(dir, 'model.pkl');
    const error = await rejection(downloadFile(`${base}/corrupt`, dest, { expectedBytes: SIZE, sha256: sha }));
    expect(error.code).toBe('ERR_DOWNLOAD');
    expect(error.message).toContain(`expected sha256 ${sha}, got `);
    expect(error.message).not.toContain(`got ${sha}`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('rejects a size that differs from expectedBytes, before or after the body', async () => {
    const dest = path.join(dir, 'model.pkl');
    let error = await rejection(downloadFile(`${base}/file`, dest, { expectedBytes: SIZE + 1 }));
    expect(error.code).toBe('ERR_DOWNLOAD');
    expect(error.message).toBe(`Size mismatch for ${base}/file: expected ${SIZE + 1} bytes, the server reports ${SIZE}. Nothing was kept.`);
    expect(fs.readdirSync(dir)).toEqual([]);

    // No Content-Length and a short body: it may have been cut, so the .part stays for a resume.
    error = await rejection(downloadFile(`${base}/chunked`, dest, { expectedBytes: SIZE }));
    expect(error.message).toBe(
      `The download of ${base}/chunked ended early: got ${SIZE - 10} of ${SIZE} bytes. The partial file ${dest}.part is kept; call again to resume.`,
    );
    expect(fs.readdirSync(dir)).toEqual(['model.pkl.part']);

    // A body longer than expectedBytes cannot be the file: deleted.
    fs.rmSync(`${dest}.part`);
    error = await rejection(downloadFile(`${base}/chunked`, dest, { expectedBytes: 1000 }));
    expect(error.message).toBe(`Size mismatch for ${base}/chunked: expected 1000 bytes, but more arrived. The partial file was deleted.`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('turns HTTP errors into ERR_DOWNLOAD naming the status and URL', async () => {
    const dest = path.join(dir, 'model.pkl');
    let error = await rejection(downloadFile(`${base}/missing.pkl`, dest));
    expect(error.code).toBe('ERR_DOWNLOAD');
    expect(error.message).toBe(`HTTP 404 Not Found while downloading ${base}/missing.pkl`);
    error = await rejection(downloadFile(`${base}/500`, dest, { retries: 0 }));
    expect(error.message).toBe(`HTTP 500 Internal Server Error while downloading ${base}/500`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('turns a refused connection into ERR_DOWNLOAD', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error = await rejection(downloadFile(`http://127.0.0.1:${port}/x.pkl`, path.join(dir, 'x.pkl')));
    expect(error.code).toBe('ERR_DOWNLOAD');
    expect(error.message).toMatch(/^Network error while downloading http:\/\/127\.0\.0\.1:\d+\/x\.pkl: .*ECONNREFUSED/);
  });

  it('cancels promptly on abort mid-body and keeps the .part (or deletes it when asked)', async () => {
    for (const deletePartialOnAbort of [false, true]) {
      const dest = path.join(dir, `model-${deletePartialOnAbort}.pkl`);
      const controller = new AbortController();
      const reason = new Error('user pressed ctrl-c');
      let abortedAt = 0;
      const promise = downloadFile(`${base}/slow`, dest, {
        signal: controller.signal,
        deletePartialOnAbort,
        onProgress: (p) => {
          if (p.downloadedSize > 0 && !abortedAt) {
            abortedAt = Date.now();
            setTimeout(() => controller.abort(reason), 20);
          }
        },
      });
      const error = await rejection(promise);
      expect(Date.now() - abortedAt).toBeLessThan(1000);
      expect(error.code).toBe('ERR_DOWNLOAD');
      expect(error.cause).toBe(reason);
      expect(error.message).toMatch(/was aborted/);
      expect(fs.existsSync(dest)).toBe(false);
      expect(fs.existsSync(`${dest}.part`)).toBe(!deletePartialOnAbort);
      if (!deletePartialOnAbort) expect(fs.statSync(`${dest}.part`).size).toBeGreaterThan(0);
    }
  });

  it('cancels promptly while waiting for headers, and at once when already aborted', async () => {
    const dest = path.join(dir, 'model.pkl');
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 50);
    const error = await rejection(downloadFile(`${base}/hang`, dest, { signal: controller.signal }));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(error.code).toBe('ERR_DOWNLOAD');

    const before = seen.length;
    const again = await rejection(downloadFile(`${base}/file`, dest, { signal: AbortSignal.abort() }));
    expect(again.code).toBe('ERR_DOWNLOAD');
    expect(seen.length).toBe(before);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('skips the download when dest is already there with the right size and checksum', async () => {
    const dest = path.join(dir, 'model.pkl');
    fs.writeFileSync(dest, content);
    const events: DownloadProgress[] = [];
    const result = await downloadFile(`${base}/file`, dest, { expectedBytes: SIZE, sha256: sha, onProgress: (p) => events.push(p) });
    expect(result).toEqual({ path: dest, bytes: SIZE, sha256: sha, skipped: true, resumed: false });
    expect(events).toEqual([{ downloadedSize: SIZE, totalSize: SIZE }]);
    expect(seen).toHaveLength(0);
  });

  it('replaces a dest whose checksum is wrong (atomically, only once the new file verified)', async () => {
    const dest = path.join(dir, 'model.pkl');
    const wrong = Buffer.from(content);
    wrong[0] ^= 1;
    fs.writeFileSync(dest, wrong);
    const result = await downloadFile(`${base}/file`, dest, { expectedBytes: SIZE, sha256: sha });
    expect(result.skipped).toBe(false);
    expect(seen).toHaveLength(1);
    expect(fs.readFileSync(dest).equals(content)).toBe(true);
  });

  it('reports a destination it cannot write as ERR_DOWNLOAD', async () => {
    fs.writeFileSync(path.join(dir, 'not-a-dir'), 'x');
    const error = await rejection(downloadFile(`${base}/file`, path.join(dir, 'not-a-dir', 'model.pkl')));
    expect(error.code).toBe('ERR_DOWNLOAD');
    expect(error.message).toMatch(/^Cannot create the directory for /);
    expect(seen).toHaveLength(0);
  });

  it('validates its arguments', async () => {
    const dest = path.join(dir, 'model.pkl');
    await expect(downloadFile('ftp://example.invalid/x', dest)).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    await expect(downloadFile(`${base}/file`, '')).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    await expect(downloadFile(`${base}/file`, dest, { sha256: 'abc' })).rejects.toThrow(
      "Expected a SHA-256 as 64 hex digits for sha256 but received 'abc'",
    );
    await expect(downloadFile(`${base}/file`, dest, { expectedBytes: -1 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    expect(seen).toHaveLength(0);
  });

  it('refuses a second concurrent download to the same dest', async () => {
    const dest = path.join(dir, 'model.pkl');
    const controller = new AbortController();
    const first = downloadFile(`${base}/slow`, dest, { signal: controller.signal });
    const error = await rejection(downloadFile(`${base}/file`, dest));
    expect(error.message).toContain('is already being downloaded by this process');
    controller.abort();
    await expect(first).rejects.toMatchObject({ code: 'ERR_DOWNLOAD' });
  });

  it('uses an injected fetch', async () => {
    const calls: string[] = [];
    const dest = path.join(dir, 'model.pkl');
    await downloadFile('https://models.example.invalid/m.pkl', dest, {
      sha256: sha,
      fetchImpl: async (url, init) => {
        calls.push(`${url} ${init.headers.range ?? ''}`);
        return new Response(content, { status: 200, headers: { 'content-length': String(SIZE) } });
      },
    });
    expect(calls).toEqual(['https://models.example.invalid/m.pkl ']);
    expect(fs.readFileSync(dest).equals(content)).toBe(true);
  });
});

describe('progressBar', () => {
  function fakeStream(isTTY: boolean): { isTTY: boolean; columns: number; out: string[]; write(s: string): boolean } {
    return {
      isTTY,
      columns: 100,
      out: [],
      write(s: string) {
        this.out.push(s);
        return true;
      },
    };
  }

  it('redraws in place on a TTY', () => {
    const stream = fakeStream(true);
    const bar = progressBar(stream as unknown as NodeJS.WriteStream, { label: 'ffhq', intervalMs: 0 });
    bar({ downloadedSize: 0, totalSize: 2048 });
    bar({ downloadedSize: 1024, totalSize: 2048 });
    bar({ downloadedSize: 2048, totalSize: 2048 });
    bar.done();
    expect(stream.out.every((s) => s.startsWith('\r'))).toBe(true);
    expect(stream.out[1]).toContain(' 50.0%  1.0 KiB / 2.0 KiB');
    expect(stream.out[1]).toMatch(/^\rffhq \[#+\.+\]/);
    expect(stream.out.at(-1)).toMatch(/100\.0%.*\n$/);
  });

  it('prints a line per 10 % elsewhere', () => {
    const stream = fakeStream(false);
    const bar = progressBar(stream as unknown as NodeJS.WriteStream);
    for (let i = 0; i <= 1000; i += 7) bar({ downloadedSize: i, totalSize: 1000 });
    bar({ downloadedSize: 1000, totalSize: 1000 });
    bar.done();
    expect(stream.out).toHaveLength(11);
    expect(stream.out.every((s) => s.endsWith('\n'))).toBe(true);
  });

  it('formats sizes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(381_624_121)).toBe('363.9 MiB');
  });
});
