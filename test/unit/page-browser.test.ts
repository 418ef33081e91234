/**
 * The face page in a real Chromium (Debian's /usr/bin/chromium driven by playwright-core; nothing
 * is downloaded): the image decodes, "New face" swaps it without a reload, a permalink is stable
 * across reloads, the AI label is visible, download works, the ψ control (StyleGAN2) re-renders.
 * Screenshots are kept in build/page-test/ as artifacts.
 *
 * Without the browser the suite is skipped with a warning, except under CI=true, where it fails
 * (.ci/run installs chromium).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { createFaceServer, DEFAULT_MODEL, loadGenerator, type FaceServer, type Generator } from '../../lib/index.js';
import { fixturePath, haveFixtures } from '../helpers/fixtures.js';

const CHROMIUM = process.env.FACEGAN_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = path.resolve('build', 'page-test');
const haveBrowser = fs.existsSync(CHROMIUM);

function suite(name: string, fn: () => void): void {
  if (haveBrowser) return describe(name, fn);
  const why = `${CHROMIUM} not found (apt-get install -y chromium)`;
  if (process.env.CI === 'true') throw new Error(`${name}: ${why}; CI=true, so this is a failure, not a skip`);
  console.warn(`\n!!!!!!!!!! SKIPPING "${name}": ${why} !!!!!!!!!!\n`);
  describe.skip(name, fn);
}

async function launch(): Promise<{ context: BrowserContext; profile: string; offsite: string[] }> {
  const { chromium } = await import('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1000, height: 900 },
    acceptDownloads: true,
  });
  // Loopback only: anything else is refused and recorded (the page must need nothing from elsewhere).
  const offsite: string[] = [];
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.protocol === 'data:' || u.hostname === '127.0.0.1') return route.continue();
    offsite.push(u.href);
    return route.abort();
  });
  return { context, profile, offsite };
}

interface FaceState {
  src: string;
  currentSrc: string;
  /** Density-corrected (for a srcset pick: CSS pixels), as the DOM reports it. */
  naturalWidth: number;
  /** Pixels of the image the browser picked (its size parameter). */
  pixels: number;
  /** CSS pixels × devicePixelRatio: what the screen shows. */
  screenWidth: number;
  seed: string;
}

async function faceReady(page: Page): Promise<FaceState> {
  await page.waitForFunction(() => {
    const img = document.getElementById('face') as HTMLImageElement;
    return img.complete && img.naturalWidth > 0 && !img.classList.contains('loading');
  });
  const state = await page.evaluate(() => {
    const img = document.getElementById('face') as HTMLImageElement;
    return {
      src: img.getAttribute('src')!,
      currentSrc: new URL(img.currentSrc).pathname + new URL(img.currentSrc).search,
      naturalWidth: img.naturalWidth,
      screenWidth: img.getBoundingClientRect().width * devicePixelRatio,
      seed: document.getElementById('seed')!.textContent!,
    };
  });
  return { ...state, pixels: Number(new URL(state.currentSrc, 'http://x').searchParams.get('size')) };
}

/** WCAG AA: text contrast of the label, the caption, the buttons and links against what is behind them is at least 4.5:1. */
async function expectContrast(page: Page, scheme: string): Promise<void> {
  const ratios = await page.evaluate(() => {
    const lum = (c: string) => {
      const [r, g, b] = c.match(/[\d.]+/g)!.slice(0, 3).map((v) => {
        const x = Number(v) / 255;
        return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const bgOf = (el: Element | null): string => {
      for (; el; el = el.parentElement) {
        const bg = getComputedStyle(el).backgroundColor;
        if (bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent') return bg;
      }
      return 'rgb(255, 255, 255)';
    };
    return ['#ai-label', 'figcaption span', '#new-face', '#download', '.badge', '#permalink'].map((sel) => {
      const el = document.querySelector(sel)!;
      const [a, b] = [lum(getComputedStyle(el).color), lum(bgOf(el))];
      return [sel, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)] as [string, number];
    });
  });
  for (const [sel, ratio] of ratios) expect(ratio, `${sel} (${scheme})`).toBeGreaterThanOrEqual(4.5);
}

suite('the face page in Chromium (embedded ProGAN-128)', () => {
  let gen: Generator;
  let app: FaceServer;
  let base: string;
  let context: BrowserContext;
  let profile: string;
  let offsite: string[];
  let page: Page;
  const problems: string[] = [];

  beforeAll(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    gen = await loadGenerator(DEFAULT_MODEL, { device: 'cpu' });
    app = createFaceServer({ generator: gen });
    const addr = await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${addr.port}`;
    ({ context, profile, offsite } = await launch());
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(String(e)));
  });
  afterAll(async () => {
    await context?.close();
    if (profile) fs.rmSync(profile, { recursive: true, force: true });
    await app?.close();
    gen?.dispose();
  });

  it('loads, decodes the face and shows the AI-generated label; every load is a new face', async () => {
    await page.goto(base + '/');
    const first = await faceReady(page);
    expect(first.src).toBe(`/face.webp?seed=${first.seed}&size=512`);
    // Sharp: the browser picked (srcset) an image with at least as many pixels as the screen shows.
    expect(first.currentSrc).toMatch(new RegExp(`^/face\\.webp\\?seed=${first.seed}&size=(256|512|768|1024)$`));
    expect(first.pixels).toBeGreaterThanOrEqual(first.screenWidth);
    expect(first.naturalWidth).toBeGreaterThan(0);
    const label = page.locator('#ai-label');
    expect(await label.isVisible()).toBe(true);
    expect(await label.textContent()).toBe('AI-generated by progan-celeba128 (ProGAN, 128×128)');
    expect(await page.locator('.badge').isVisible()).toBe(true);
    const box = (await page.locator('#face').boundingBox())!;
    expect(box.width).toBeGreaterThan(400);
    expect(await page.locator('#face').getAttribute('alt')).toMatch(/^AI-generated face of a person who does not exist \(seed \d+/);
    expect(await page.locator('#psi').count()).toBe(0); // ProGAN: no ψ
    await expectContrast(page, 'light');
    await page.screenshot({ path: path.join(ARTIFACTS, 'face-page.png') });
    await page.reload();
    const second = await faceReady(page);
    expect(second.seed).not.toBe(first.seed);
  });

  it('"New face" swaps the image without reloading the page (mouse and keyboard)', async () => {
    await page.goto(base + '/');
    const before = await faceReady(page);
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    await page.click('#new-face');
    await page.waitForFunction((old) => document.getElementById('seed')!.textContent !== old, before.seed);
    const after = await faceReady(page);
    expect(after.seed).not.toBe(before.seed);
    expect(after.src).toBe(`/face.webp?seed=${after.seed}&size=512`);
    expect(after.currentSrc).toBe(`/face.webp?seed=${after.seed}&size=${after.pixels}`);
    expect(after.pixels).toBeGreaterThanOrEqual(after.screenWidth);
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42); // same document
    expect(page.url()).toBe(base + '/');
    expect(await page.locator('#permalink').getAttribute('href')).toBe(`/?seed=${after.seed}`);
    expect(await page.locator('#download').getAttribute('href')).toBe(`/face.png?seed=${after.seed}`);
    expect(await page.locator('#status').textContent()).toBe(`New face, seed ${after.seed}`);
    // Keyboard: Tab to the button and press Enter; and the N shortcut.
    await page.locator('#new-face').focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction((old) => document.getElementById('seed')!.textContent !== old, after.seed);
    const third = await faceReady(page);
    await page.keyboard.press('n');
    await page.waitForFunction((old) => document.getElementById('seed')!.textContent !== old, third.seed);
    expect((await faceReady(page)).naturalWidth).toBeGreaterThan(0);
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
  });

  it('a permalink shows the same face on every reload', async () => {
    await page.goto(base + '/?seed=1234');
    const a = await faceReady(page);
    expect(a.seed).toBe('1234');
    const shotA = await page.locator('#face').screenshot();
    await page.screenshot({ path: path.join(ARTIFACTS, 'face-page-seed1234.png') });
    await page.reload();
    const b = await faceReady(page);
    const shotB = await page.locator('#face').screenshot();
    expect(b.src).toBe(a.src);
    expect(shotB.equals(shotA)).toBe(true);
    // The pixels are those of seed 1234 (the served image, decoded by the browser, resized by sharp).
    const want = await sharp(Buffer.from((await gen.generate({ seed: 1234 }))[0].data), { raw: { width: 128, height: 128, channels: 3 } })
      .resize(a.pixels, a.pixels, { kernel: 'lanczos3', fit: 'fill' })
      .raw()
      .toBuffer();
    const got = await page.evaluate(async (src) => {
      const img = new Image(); // the picked candidate at its own pixel size (no srcset density)
      img.src = src;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const ctx = c.getContext('2d')!;
      ctx.drawImage(img, 0, 0);
      return Array.from(ctx.getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 4 !== 3));
    }, a.currentSrc);
    let diff = 0;
    for (let i = 0; i < want.length; i++) diff += Math.abs(want[i] - got[i]);
    expect(got.length).toBe(want.length);
    expect(diff / want.length).toBeLessThan(4); // lossy WebP for display, same face
    // "New face" from a permalink page keeps the address bar honest.
    await page.click('#new-face');
    await page.waitForFunction(() => document.getElementById('seed')!.textContent !== '1234');
    const c = await faceReady(page);
    expect(page.url()).toBe(`${base}/?seed=${c.seed}`);
  });

  it('the download button saves the PNG of the face shown, with provenance', async () => {
    await page.goto(base + '/?seed=77');
    await faceReady(page);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    expect(download.suggestedFilename()).toBe('face-seed77.png');
    const file = path.join(ARTIFACTS, 'download.png');
    await download.saveAs(file);
    const meta = await sharp(file).metadata();
    expect([meta.format, meta.width]).toEqual(['png', 128]);
    expect(meta.xmp?.toString()).toContain('trainedAlgorithmicMedia');
    expect(meta.xmp?.toString()).toContain('<facegan:seed>77</facegan:seed>');
  });

  it('fits a phone screen, and nothing was fetched from elsewhere or failed', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(base + '/?seed=2024');
    const phone = await faceReady(page);
    expect(phone.pixels).toBeGreaterThanOrEqual(phone.screenWidth);
    expect(phone.currentSrc).toBe(`/face.webp?seed=2024&size=${phone.pixels}`);
    const box = (await page.locator('#face').boundingBox())!;
    expect(box.width).toBeGreaterThan(340);
    expect(box.x + box.width).toBeLessThanOrEqual(390);
    expect(await page.locator('#ai-label').isVisible()).toBe(true);
    expect(await page.locator('#new-face').isVisible()).toBe(true);
    await page.screenshot({ path: path.join(ARTIFACTS, 'face-page-phone.png') });
    await page.emulateMedia({ colorScheme: 'dark' });
    await expectContrast(page, 'dark');
    await page.screenshot({ path: path.join(ARTIFACTS, 'face-page-phone-dark.png') });
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 1000, height: 900 });
    expect(offsite).toEqual([]);
    expect(problems).toEqual([]);
  });
});

(haveFixtures ? suite : describe.skip)('the ψ control in Chromium (StyleGAN2 tiny32)', () => {
  let gen: Generator;
  let app: FaceServer;
  let base: string;
  let context: BrowserContext;
  let profile: string;

  beforeAll(async () => {
    gen = await loadGenerator(fixturePath('tiny32.pkl'), { device: 'cpu' });
    app = createFaceServer({ generator: gen, displaySize: 256 });
    base = `http://127.0.0.1:${(await app.listen(0, '127.0.0.1')).port}`;
    ({ context, profile } = await launch());
  });
  afterAll(async () => {
    await context?.close();
    if (profile) fs.rmSync(profile, { recursive: true, force: true });
    await app?.close();
    gen?.dispose();
  });

  it('changing ψ re-renders the same seed with that ψ and updates the permalink', async () => {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(base + '/?seed=5');
    await faceReady(page);
    expect(await page.locator('label[for=psi]').isVisible()).toBe(true);
    await page.locator('#psi').fill('0.5');
    await page.waitForFunction(() => (document.getElementById('face') as HTMLImageElement).getAttribute('src')!.includes('psi=0.5'));
    const r = await faceReady(page);
    expect(r.src).toBe('/face.webp?seed=5&psi=0.5&size=256');
    expect(await page.locator('#psi-value').textContent()).toBe('0.5');
    expect(await page.locator('#permalink').getAttribute('href')).toBe('/?seed=5&psi=0.5');
    expect(page.url()).toBe(`${base}/?seed=5&psi=0.5`);
    await page.reload();
    expect((await faceReady(page)).src).toBe('/face.webp?seed=5&psi=0.5&size=256');
    expect(await page.locator('#psi').inputValue()).toBe('0.5');
  });
});
