import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import {
  cachedModel,
  catalog,
  downloadFileName,
  findModel,
  licenceNotice,
  licences,
  modelUrl,
  pullModel,
  resolveModel,
  type CatalogEntry,
  type LicenceTerms,
} from '../../lib/catalog.js';
import { FaceganError } from '../../lib/errors.js';
import { cacheDir, downloadsDir, modelsDir } from '../../lib/paths.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const fixtures = process.env.FACEGAN_FIXTURES ?? path.resolve(repo, '../shared/fixtures');
const tinyPkl = path.join(fixtures, 'tiny32.pkl');
const haveFixture = fs.existsSync(tinyPkl);
if (!haveFixture && process.env.CI !== 'true') {
  console.warn(`\n!!! catalog.test.ts: ${tinyPkl} is missing: the pullModel end-to-end tests are SKIPPED (set FACEGAN_FIXTURES).\n`);
}

describe('catalog', () => {
  it('lists each official StyleGAN2 checkpoint once, with a citation and a non-commercial licence', () => {
    const ids = catalog.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(catalog.map(downloadFileName)).size).toBe(ids.length); // mirrors are addressed by file name
    for (const m of catalog) {
      expect(m.id).toMatch(/^[a-z0-9][a-z0-9-]*$/);
      expect(m.url).toMatch(/^https:\/\/(nvlabs-fi-cdn\.nvidia\.com|api\.ngc\.nvidia\.com)\/.+\.pkl$/);
      expect(m.url).not.toMatch(/stylegan3-[tr]-/); // StyleGAN3 networks do not run on this engine
      expect([32, 256, 512, 1024]).toContain(m.resolution);
      expect(m.cDim).toBe(m.id === 'cifar10' ? 10 : 0);
      expect(m.licence.commercial).toBe(false);
      expect(Object.values(licences)).toContainEqual(m.licence);
      expect(m.source.url).toMatch(/^https:\/\/github\.com\/NVlabs\//);
      expect(m.source.citation.length).toBeGreaterThan(20);
      expect(m.bytes === undefined || Number.isSafeInteger(m.bytes)).toBe(true);
      expect(m.sha256 === undefined || /^[0-9a-f]{64}$/.test(m.sha256)).toBe(true);
    }
    expect(ids).toEqual(expect.arrayContaining(['ffhq', 'ffhq-512', 'ffhq-256', 'metfaces', 'metfacesu', 'afhq-cat', 'afhq-dog', 'afhq-wild']));
    expect(Object.isFrozen(catalog)).toBe(true);
    expect(Object.isFrozen(catalog[0])).toBe(true);
  });

  it('finds entries by id and lists the valid ids otherwise', () => {
    expect(findModel('ffhq')).toMatchObject({
      url: 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl',
      resolution: 1024,
      cDim: 0,
    });
    expect(findModel('ffhq-512').url).toBe(
      'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/transfer-learning-source-nets/ffhq-res512-mirror-stylegan2-noaug.pkl',
    );
    expect(findModel('metfacesu').url).toBe(
      'https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/stylegan2-metfacesu-1024x1024.pkl',
    );
    let error: unknown;
    try {
      findModel('ffhq-2048');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FaceganError);
    expect((error as FaceganError).code).toBe('ERR_INVALID_OPTION');
    expect((error as FaceganError).message).toBe(`Unknown model 'ffhq-2048'. Valid ids: ${catalog.map((m) => m.id).join(', ')}`);
  });

  it('rewrites URLs onto a mirror by file name', () => {
    const ffhq = findModel('ffhq');
    expect(modelUrl(ffhq, undefined)).toBe(ffhq.url);
    expect(modelUrl(ffhq, 'http://127.0.0.1:9/m/')).toBe('http://127.0.0.1:9/m/ffhq.pkl');
    expect(modelUrl(findModel('afhqv2'), 'https://mirror.example/sg2')).toBe('https://mirror.example/sg2/stylegan2-afhqv2-512x512.pkl');
    expect(() => modelUrl(ffhq, 'file:///tmp')).toThrow(/for baseUrl \(or FACEGAN_CATALOG_BASE_URL\)/);
  });

  it('says plainly that the weights are non-commercial', () => {
    const notice = licenceNotice(findModel('metfaces'));
    expect(notice).toContain('NVIDIA Source Code License for StyleGAN2 with Adaptive Discriminator Augmentation (ADA)');
    expect(notice).toContain('https://nvlabs.github.io/stylegan2-ada-pytorch/license.html');
    expect(notice).toContain('NON-COMMERCIAL USE ONLY');
    expect(notice).toContain('research or evaluation purposes only');
  });
});

describe('cacheDir', () => {
  const home = '/home/ada';
  it('uses FACEGAN_HOME when set', () => {
    expect(cacheDir({ env: { FACEGAN_HOME: '/data/facegan', XDG_CACHE_HOME: '/x' }, platform: 'linux', homedir: home })).toBe('/data/facegan');
    expect(downloadsDir({ env: { FACEGAN_HOME: '/data/facegan' }, platform: 'linux' })).toBe('/data/facegan/downloads');
    expect(modelsDir({ env: { FACEGAN_HOME: '/data/facegan' }, platform: 'linux' })).toBe('/data/facegan/models');
  });
  it('follows XDG on Linux (ignoring a relative XDG_CACHE_HOME)', () => {
    expect(cacheDir({ env: { XDG_CACHE_HOME: '/var/cache/ada' }, platform: 'linux', homedir: home })).toBe('/var/cache/ada/facegan');
    expect(cacheDir({ env: {}, platform: 'linux', homedir: home })).toBe('/home/ada/.cache/facegan');
    expect(cacheDir({ env: { XDG_CACHE_HOME: 'rel/cache' }, platform: 'freebsd', homedir: home })).toBe('/home/ada/.cache/facegan');
  });
  it('uses ~/Library/Caches on macOS and %LOCALAPPDATA% on Windows', () => {
    expect(cacheDir({ env: {}, platform: 'darwin', homedir: '/Users/ada' })).toBe('/Users/ada/Library/Caches/facegan');
    expect(cacheDir({ env: { LOCALAPPDATA: 'C:\\Users\\ada\\AppData\\Local' }, platform: 'win32', homedir: 'C:\\Users\\ada' })).toBe(
      'C:\\Users\\ada\\AppData\\Local\\facegan\\Cache',
    );
    expect(cacheDir({ env: {}, platform: 'win32', homedir: 'C:\\Users\\ada' })).toBe('C:\\Users\\ada\\AppData\\Local\\facegan\\Cache');
    expect(modelsDir({ env: {}, platform: 'win32', homedir: 'C:\\Users\\ada' })).toBe('C:\\Users\\ada\\AppData\\Local\\facegan\\Cache\\models');
  });
});

// ---- pullModel / resolveModel, end to end against a local server (127.0.0.1 only) ----

let server: http.Server;
let base: string;
let timeline: string[] = [];
let fixtureBytes: Buffer = Buffer.alloc(0);
let home: string;
const savedEnv = { FACEGAN_HOME: process.env.FACEGAN_HOME, FACEGAN_CATALOG_BASE_URL: process.env.FACEGAN_CATALOG_BASE_URL };

function tinyEntry(overrides: Partial<CatalogEntry> = {}): CatalogEntry {
  return {
    id: 'tiny32',
    title: 'Tiny test generator 32×32',
    url: `${base}/models/tiny32.pkl`,
    resolution: 32,
    cDim: 0,
    bytes: fixtureBytes.length,
    sha256: createHash('sha256').update(fixtureBytes).digest('hex'),
    licence: licences.stylegan2Ada,
    source: { url: 'https://github.com/NVlabs/stylegan2-ada-pytorch', citation: 'test fixture' },
    ...overrides,
  };
}

interface ConvertCall {
  src: string;
  dst: string;
  srcBytes: Buffer;
}

function fakeConvert(calls: ConvertCall[]): (src: string, dst: string) => Promise<void> {
  return async (src, dst) => {
    timeline.push('convert');
    calls.push({ src, dst, srcBytes: fs.readFileSync(src) });
    fs.writeFileSync(dst, `converted ${path.basename(src)}`);
  };
}

// Without the fixture: skipped (loudly, above) on a developer machine, a failure under CI=true.
const pullSuite = haveFixture || process.env.CI !== 'true' ? describe.skipIf(!haveFixture) : describe;

pullSuite('pullModel', () => {
  beforeAll(async () => {
    if (!haveFixture) throw new Error(`CI=true but the fixture ${tinyPkl} is missing (set FACEGAN_FIXTURES)`);
    fixtureBytes = fs.readFileSync(tinyPkl);
    server = http.createServer((req, res) => {
      timeline.push(`GET ${req.url}`);
      if (req.url?.endsWith('.pkl')) {
        res.writeHead(200, { 'content-length': fixtureBytes.length });
        return res.end(fixtureBytes);
      }
      res.writeHead(404, 'Not Found');
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-home-'));
    process.env.FACEGAN_HOME = home;
    delete process.env.FACEGAN_CATALOG_BASE_URL;
    timeline = [];
  });

  afterEach(() => {
    for (const [key, value] of Object.entries(savedEnv)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('shows the licence, downloads into <cache>/downloads, converts once into <cache>/models, then serves the cache', async () => {
    const calls: ConvertCall[] = [];
    const messages: string[] = [];
    const progress: number[] = [];
    const log = (message: string): void => {
      timeline.push('log');
      messages.push(message);
    };
    const entry = tinyEntry();
    const file = await pullModel(entry, { convert: fakeConvert(calls), log, onProgress: (p) => progress.push(p.downloadedSize) });

    expect(file).toBe(path.join(home, 'models', 'tiny32.safetensors'));
    expect(fs.readFileSync(file, 'utf8')).toBe('converted tiny32.pkl');
    expect(timeline[0]).toBe('log'); // the licence comes before any request
    expect(timeline.filter((t) => t.startsWith('GET'))).toEqual(['GET /models/tiny32.pkl']);
    expect(timeline.indexOf('convert')).toBeGreaterThan(timeline.indexOf('GET /models/tiny32.pkl'));
    expect(messages[0]).toBe(licenceNotice(entry));
    expect(messages[0]).toContain('NON-COMMERCIAL USE ONLY');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.src).toBe(path.join(home, 'downloads', 'tiny32.pkl'));
    expect(calls[0]!.srcBytes.equals(fixtureBytes)).toBe(true);
    expect(path.dirname(calls[0]!.dst)).toBe(path.join(home, 'models'));
    expect(progress.at(-1)).toBe(fixtureBytes.length);
    // The .pkl is gone after conversion; no temporary files are left.
    expect(fs.readdirSync(path.join(home, 'downloads'))).toEqual([]);
    expect(fs.readdirSync(path.join(home, 'models'))).toEqual(['tiny32.safetensors']);
    expect(await cachedModel(entry)).toBe(file);

    // Second call: the cached file, without network, conversion or licence text.
    timeline = [];
    messages.length = 0;
    expect(await pullModel(entry, { convert: fakeConvert(calls), log })).toBe(file);
    expect(timeline).toEqual([]);
    expect(calls).toHaveLength(1);
  }, 10_000);

  it('keeps the download when asked, and after a failed conversion', async () => {
    const calls: ConvertCall[] = [];
    await pullModel(tinyEntry(), { convert: fakeConvert(calls), log: () => {}, keepDownload: true });
    expect(fs.readdirSync(path.join(home, 'downloads'))).toEqual(['tiny32.pkl']);

    const failing = async (): Promise<void> => {
      throw new FaceganError('ERR_UNSUPPORTED_ARCH', 'not a StyleGAN2');
    };
    const other = tinyEntry({ id: 'tiny32-b', url: `${base}/models/b/tiny32b.pkl` });
    await expect(pullModel(other, { convert: failing, log: () => {} })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED_ARCH' });
    expect(fs.readdirSync(path.join(home, 'models'))).toEqual(['tiny32.safetensors']); // no half or temporary file
    expect(fs.readdirSync(path.join(home, 'downloads')).sort()).toEqual(['tiny32.pkl', 'tiny32b.pkl']);

    // The retry converts the kept download without fetching it again.
    timeline = [];
    await pullModel(other, { convert: fakeConvert(calls), log: () => {} });
    expect(timeline).toEqual(['convert']);
  });

  it('asks, or refuses, before any network access', async () => {
    const seenTerms: LicenceTerms[] = [];
    const refuse = (terms: LicenceTerms): boolean => {
      seenTerms.push(terms);
      return false;
    };
    await expect(pullModel(tinyEntry(), { licenceAccepted: refuse, convert: fakeConvert([]), log: () => {} })).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
    });
    expect(seenTerms[0]).toMatchObject({ id: 'tiny32', licence: licences.stylegan2Ada });
    expect(seenTerms[0]!.notice).toContain('NON-COMMERCIAL USE ONLY');
    const error = await pullModel(tinyEntry(), { licenceAccepted: false, convert: fakeConvert([]), log: () => {} }).catch((e: unknown) => e);
    expect((error as FaceganError).message).toContain("The licence of 'tiny32' was not accepted; nothing was downloaded.");
    expect(timeline).toEqual([]);

    const messages: string[] = [];
    await pullModel(tinyEntry(), { licenceAccepted: async () => true, convert: fakeConvert([]), log: (m) => messages.push(m) });
    expect(messages[0]).toContain('Licence accepted');
  });

  it('fetches catalogue ids from FACEGAN_CATALOG_BASE_URL, and resolveModel finds paths, ids and the cache', async () => {
    process.env.FACEGAN_CATALOG_BASE_URL = `${base}/mirror/`;
    const calls: ConvertCall[] = [];
    const messages: string[] = [];
    const file = await resolveModel('ffhq', { convert: fakeConvert(calls), log: (m) => messages.push(m) });
    expect(file).toBe(path.join(home, 'models', 'ffhq.safetensors'));
    expect(timeline).toEqual(['GET /mirror/ffhq.pkl', 'convert']);
    expect(messages[0]).toContain('NVIDIA Source Code License for StyleGAN2 with Adaptive Discriminator Augmentation (ADA)');

    timeline = [];
    expect(await resolveModel('ffhq')).toBe(file); // cached: no network, no converter needed
    expect(await resolveModel(file)).toBe(file);
    expect(await resolveModel(tinyPkl)).toBe(tinyPkl);
    expect(timeline).toEqual([]);
    await expect(resolveModel('nope')).rejects.toThrow(/^Unknown model 'nope'\. Valid ids: ffhq, ffhq-512, /);
    await expect(resolveModel('./missing.pkl')).rejects.toMatchObject({ code: 'ERR_FILE_NOT_FOUND' });
    await expect(resolveModel('')).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
  });

  it('runs concurrent pulls of one model as one download and one conversion', async () => {
    const calls: ConvertCall[] = [];
    const entry = tinyEntry();
    const [a, b] = await Promise.all([
      pullModel(entry, { convert: fakeConvert(calls), log: () => {} }),
      pullModel(entry, { convert: fakeConvert(calls), log: () => {} }),
    ]);
    expect(a).toBe(b);
    expect(calls).toHaveLength(1);
    expect(timeline.filter((t) => t.startsWith('GET'))).toHaveLength(1);
  });

  it('stops on abort without converting', async () => {
    const calls: ConvertCall[] = [];
    const error = await pullModel(tinyEntry(), { signal: AbortSignal.abort(), convert: fakeConvert(calls), log: () => {} }).catch(
      (e: unknown) => e,
    );
    expect((error as FaceganError).code).toBe('ERR_DOWNLOAD');
    expect(calls).toHaveLength(0);
    expect(fs.existsSync(path.join(home, 'models', 'tiny32.safetensors'))).toBe(false);
  });
});
