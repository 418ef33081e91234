/** The HTTP face handler against a real server on 127.0.0.1: images, typed 4xx errors, back-pressure. */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createFaceHandler, loadGenerator, type Generator } from '../../lib/index.js';
import { describeFixtures, fixturePath } from '../helpers/fixtures.js';

async function get(base: string, path: string, method = 'GET'): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const res = await fetch(base + path, { method });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(text));
    let data = '';
    socket.on('data', (d) => (data += d.toString()));
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('timeout')));
  });
}

describeFixtures('createFaceHandler', () => {
  let gen: Generator;
  let server: http.Server;
  let base: string;
  let port: number;

  beforeAll(async () => {
    gen = await loadGenerator(fixturePath('tiny32.pkl'), { device: 'cpu' });
    server = http.createServer(createFaceHandler({ generator: gen, maxQueue: 2 }));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    gen.dispose();
  });

  it('serves the face of a seed as PNG, the same bytes every time, cacheable', async () => {
    const a = await get(base, '/face.png?seed=42&psi=0.7');
    expect(a.status).toBe(200);
    expect(a.headers.get('content-type')).toBe('image/png');
    expect(a.headers.get('x-facegan-seed')).toBe('42');
    expect(a.headers.get('cache-control')).toMatch(/max-age/);
    const meta = await sharp(a.body).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(['png', 32, 32, 3]);
    const raw = await sharp(a.body).raw().toBuffer();
    const [want] = await gen.generate({ seed: 42, psi: 0.7 });
    expect(raw.equals(Buffer.from(want.data))).toBe(true);
    const b = await get(base, '/face.png?seed=42&psi=0.7');
    expect(b.body.equals(a.body)).toBe(true);
  });

  it('serves a new random face without a seed, never cached, and other formats', async () => {
    const a = await get(base, '/face');
    const b = await get(base, '/face');
    expect(a.status).toBe(200);
    expect(a.headers.get('cache-control')).toBe('no-store');
    expect(a.headers.get('x-facegan-seed')).not.toBe(b.headers.get('x-facegan-seed'));
    const jpeg = await get(base, '/face.jpeg?seed=1');
    expect(jpeg.headers.get('content-type')).toBe('image/jpeg');
    expect((await sharp(jpeg.body).metadata()).format).toBe('jpeg');
    const webp = await get(base, '/face?seed=1&format=webp');
    expect(webp.headers.get('content-type')).toBe('image/webp');
    const head = await get(base, '/face.png?seed=1', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
  });

  it('answers malformed requests with a 4xx and a typed JSON error', async () => {
    const cases: [string, number, string, RegExp][] = [
      ['/face.png?seed=-1', 400, 'ERR_INVALID_OPTION', /seed/],
      ['/face.png?seed=abc', 400, 'ERR_INVALID_OPTION', /seed/],
      ['/face.png?seed=4294967296', 400, 'ERR_INVALID_OPTION', /seed/],
      ['/face.png?seed=1&seed=2', 400, 'ERR_INVALID_OPTION', /one value/],
      ['/face.png?psi=NaN', 400, 'ERR_INVALID_OPTION', /psi/],
      ['/face.png?psi=', 400, 'ERR_INVALID_OPTION', /psi/],
      ['/face.png?psi=1e9', 400, 'ERR_INVALID_OPTION', /psi/],
      ['/face.png?noise=loud', 400, 'ERR_INVALID_OPTION', /noise/],
      ['/face.png?class=1', 400, 'ERR_INVALID_OPTION', /unconditional/],
      ['/face.png?format=gif', 400, 'ERR_INVALID_OPTION', /format/],
      ['/face.png?x=1', 400, 'ERR_INVALID_OPTION', /query parameter/],
      ['/face.gif', 404, 'ERR_NOT_FOUND', /face.gif/],
      ['/elsewhere', 404, 'ERR_NOT_FOUND', /elsewhere/],
    ];
    for (const [path, status, code, message] of cases) {
      const r = await get(base, path);
      expect(r.status, path).toBe(status);
      const body = JSON.parse(r.body.toString()) as { error: { code: string; message: string } };
      expect(body.error.code, path).toBe(code);
      expect(body.error.message, path).toMatch(message);
    }
    const post = await get(base, '/face.png', 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const garbage = await rawRequest(port, 'NOT HTTP AT ALL\r\n\r\n');
    expect(garbage).toMatch(/^HTTP\/1\.1 400/);
    // Still healthy afterwards.
    expect((await get(base, '/face.png?seed=3')).status).toBe(200);
  });

  it('sheds load beyond maxQueue with 503 and recovers', async () => {
    // The engine is held back until released, so exactly maxQueue requests wait.
    let release!: (g: Generator) => void;
    const held = new Promise<Generator>((r) => (release = r));
    const busyServer = http.createServer(createFaceHandler({ generator: held, maxQueue: 2 }));
    await new Promise<void>((r) => busyServer.listen(0, '127.0.0.1', r));
    const busyBase = `http://127.0.0.1:${(busyServer.address() as AddressInfo).port}`;
    try {
      const first = [get(busyBase, '/face.png?seed=1'), get(busyBase, '/face.png?seed=2')];
      await new Promise((r) => setTimeout(r, 200));
      const rejected = await get(busyBase, '/face.png?seed=3');
      expect(rejected.status).toBe(503);
      expect(rejected.headers.get('retry-after')).toBe('1');
      expect(JSON.parse(rejected.body.toString()).error.code).toBe('ERR_BUSY');
      release(gen);
      expect((await Promise.all(first)).map((r) => r.status)).toEqual([200, 200]);
      expect((await get(busyBase, '/face.png?seed=4')).status).toBe(200);
    } finally {
      await new Promise((r) => busyServer.close(r));
    }
  });
});
