/**
 * HTTP helpers: a request handler that serves generated faces, for a page that shows a new face
 * on every refresh or an avatar endpoint.
 *
 *   import http from 'node:http';
 *   import { createFaceHandler } from 'facegan-native';
 *   http.createServer(createFaceHandler()).listen(8080);
 *   // GET /face.png             a new random face
 *   // GET /face.png?seed=42     always the same face   (also: psi in [-2, 2], noise, class, format=png|jpeg|webp)
 *
 * Malformed requests get a 4xx with a JSON body `{ error: { code, message } }`; engine failures
 * a 500; the process stays healthy. At most `maxQueue` requests wait for the engine; more get 503.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FaceganError, invalidOption } from './errors.js';
import type { Generator } from './generator.js';
import { encodeImage, type ImageFormat } from './image.js';
import { DEFAULT_MODEL, loadGenerator, type LoadGeneratorOptions } from './load.js';
import { checkFinite, checkInteger, checkOneOf, checkSeed } from './options.js';

export interface FaceHandlerOptions {
  /** A loaded generator, or a model path / catalogue id to load on first request (default: the embedded model). */
  generator?: Generator | Promise<Generator>;
  model?: string;
  load?: LoadGeneratorOptions;
  /** Path served (default '/face'; '/face.png', '/face.jpeg' and '/face.webp' pick the format). */
  path?: string;
  /** Requests waiting for the engine before new ones get 503 (default 32). */
  maxQueue?: number;
  /** Cache-Control for seeded images (default one day; random faces are never cached). */
  seededCacheControl?: string;
}

const FORMATS = ['png', 'jpeg', 'webp'] as const;
const CONTENT_TYPES: Record<ImageFormat, string> = { png: 'image/png', jpeg: 'image/jpeg', webp: 'image/webp' };
const ALLOWED_PARAMS = new Set(['seed', 'psi', 'noise', 'class', 'format']);

interface FaceRequest {
  seed: number | undefined;
  psi: number;
  noiseMode: 'const' | 'random' | 'none';
  classIndex: number | undefined;
  format: ImageFormat;
}

function intParam(name: string, v: string): number {
  if (!/^\d{1,10}$/.test(v)) throw invalidOption(name, 'a non-negative integer', v);
  return Number(v);
}

/** Parses `?seed=…&psi=…` into checked options. Throws ERR_INVALID_OPTION naming the parameter. */
export function parseFaceQuery(search: URLSearchParams, pathFormat: ImageFormat | undefined, cDim: number): FaceRequest {
  for (const key of search.keys()) {
    if (!ALLOWED_PARAMS.has(key)) throw invalidOption('query parameter', `one of ${[...ALLOWED_PARAMS].join(', ')}`, key);
    if (search.getAll(key).length > 1) throw invalidOption(key, 'one value', search.getAll(key).join(','));
  }
  const get = (k: string): string | undefined => search.get(k) ?? undefined;
  const seed = get('seed') === undefined ? undefined : checkSeed('seed', intParam('seed', get('seed')!));
  const psiText = get('psi');
  const psi = psiText === undefined ? 1 : checkFinite('psi', psiText.trim() === '' ? Number.NaN : Number(psiText), 1);
  if (psi < -2 || psi > 2) throw invalidOption('psi', 'a number in [-2, 2]', psi);
  const noiseMode = checkOneOf('noise', get('noise'), ['const', 'random', 'none'] as const, 'const');
  const classText = get('class');
  let classIndex: number | undefined;
  if (classText !== undefined) {
    if (cDim === 0) throw invalidOption('class', 'nothing: this model is unconditional', classText);
    classIndex = checkInteger('class', intParam('class', classText), 0, cDim - 1);
  }
  const format = checkOneOf('format', get('format') ?? pathFormat, FORMATS, 'png');
  return { seed, psi, noiseMode, classIndex, format };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, { error: { code, message } });
}

/** A `(req, res)` handler for node:http (or express / connect) that serves generated faces. */
export function createFaceHandler(options: FaceHandlerOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const base = options.path ?? '/face';
  const maxQueue = options.maxQueue === undefined ? 32 : checkInteger('maxQueue', options.maxQueue, 1, 1_000_000);
  const seededCacheControl = options.seededCacheControl ?? 'public, max-age=86400, immutable';
  let generator: Promise<Generator> | undefined =
    options.generator === undefined ? undefined : Promise.resolve(options.generator);
  const getGenerator = (): Promise<Generator> => {
    if (!generator) {
      generator = loadGenerator(options.model ?? DEFAULT_MODEL, options.load);
      generator.catch(() => {
        generator = undefined; // a later request retries the load
      });
    }
    return generator;
  };
  let waiting = 0;

  return (req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      sendError(res, 400, 'ERR_INVALID_OPTION', 'Malformed request URL');
      return;
    }
    const match = url.pathname === base ? undefined : FORMATS.find((f) => url.pathname === `${base}.${f}`);
    if (url.pathname !== base && match === undefined) {
      sendError(res, 404, 'ERR_NOT_FOUND', `No such path: ${url.pathname.slice(0, 100)}`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      sendError(res, 405, 'ERR_METHOD_NOT_ALLOWED', `Method ${String(req.method).slice(0, 20)} is not allowed`);
      return;
    }
    if (waiting >= maxQueue) {
      res.setHeader('Retry-After', '1');
      sendError(res, 503, 'ERR_BUSY', `Too many requests waiting (${waiting})`);
      return;
    }
    waiting++;
    void (async () => {
      try {
        const gen = await getGenerator();
        const q = parseFaceQuery(url.searchParams, match, gen.info.cDim);
        const seed = q.seed ?? Math.floor(Math.random() * 2 ** 32);
        const classIndex = gen.info.cDim > 0 ? (q.classIndex ?? seed % gen.info.cDim) : undefined;
        const [image] = await gen.generate({ seed, psi: q.psi, noiseMode: q.noiseMode, classIndex });
        const body = await encodeImage(image, q.format);
        res.writeHead(200, {
          'Content-Type': CONTENT_TYPES[q.format],
          'Content-Length': body.length,
          'Cache-Control': q.seed !== undefined && q.noiseMode !== 'random' ? seededCacheControl : 'no-store',
          'X-Facegan-Seed': String(seed),
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      } catch (err) {
        if (err instanceof FaceganError) {
          const status = err.code === 'ERR_INVALID_OPTION' ? 400 : 500;
          sendError(res, status, err.code, err.message);
        } else {
          sendError(res, 500, 'ERR_INTERNAL', 'Internal error');
        }
      } finally {
        waiting--;
      }
    })();
  };
}
