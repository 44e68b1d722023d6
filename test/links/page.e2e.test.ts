/**
 * The unsubscribe page in a real headless Chromium (the OS package, driven by playwright-core),
 * against a server listening on 127.0.0.1, with JavaScript off as a mail reader's browser may
 * have it: the masked address shows, the button unsubscribes, the done page offers undo, undo
 * works. Both states are compared with the screenshots in `__screenshots__/` (a pixel may differ
 * by a little, and 1 % of the pixels by more, for font hinting); a missing screenshot is written.
 *
 * Without Chromium the test is skipped with a message, except under CI=true, where it fails.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { openStore, type OptoutStore } from '../../src/index.js';
import { unsubscribeLink } from '../../src/links/links.js';
import { removeTempDirs, tempDir } from '../helpers.js';

const SCREENSHOTS = join(dirname(fileURLToPath(import.meta.url)), '__screenshots__');
const CANDIDATES = [process.env['OPTOUT_CHROMIUM'], '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
const executablePath = CANDIDATES.find((p): p is string => p !== undefined && p !== '' && existsSync(p));
const MISSING = 'no Chromium (/usr/bin/chromium; apt-get install -y chromium, or set OPTOUT_CHROMIUM)';

if (executablePath === undefined) {
  if (process.env['CI'] === 'true') throw new Error(`The browser test needs Chromium under CI: ${MISSING}`);
  process.stderr.write(`test/links/page.e2e.test.ts: SKIPPED, ${MISSING}\n`);
}

let store: OptoutStore;
let app: OptoutServer;
let browser: Browser;
let base = '';

beforeAll(async () => {
  if (executablePath === undefined) return;
  store = await openStore(join(await tempDir('optout-links-page-'), 'db'));
  app = createServer({ store, syncs: false });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await store?.close();
  await removeTempDirs();
});

/**
 * Differing pixels between two PNGs, decoded and compared by the browser itself. In JavaScript
 * text: it runs in the page, whose types (DOM) the project's compiler does not load.
 */
const PIXEL_DIFF = `async ([x, y]) => {
  const load = async (src) => createImageBitmap(await (await fetch(src)).blob());
  const [a, b] = [await load(x), await load(y)];
  const pixels = (img) => {
    const ctx = new OffscreenCanvas(img.width, img.height).getContext('2d');
    ctx.drawImage(img, 0, 0);
    return ctx.getImageData(0, 0, img.width, img.height).data;
  };
  const sameSize = a.width === b.width && a.height === b.height;
  if (!sameSize) return { width: a.width, height: a.height, changed: a.width * a.height, sameSize };
  const [pa, pb] = [pixels(a), pixels(b)];
  let changed = 0;
  for (let i = 0; i < pa.length; i += 4) {
    let d = 0;
    for (let k = 0; k < 3; k++) d = Math.max(d, Math.abs(pa[i + k] - pb[i + k]));
    if (d > 48) changed++;
  }
  return { width: a.width, height: a.height, changed, sameSize };
}`;

interface PixelDiff { width: number; height: number; changed: number; sameSize: boolean }

async function pixelDiff(page: Page, a: Buffer, b: Buffer): Promise<PixelDiff> {
  const urls = [a, b].map((png) => `data:image/png;base64,${png.toString('base64')}`);
  return page.evaluate(`(${PIXEL_DIFF})(${JSON.stringify(urls)})`) as Promise<PixelDiff>;
}

async function expectScreenshot(page: Page, name: string): Promise<void> {
  const shot = await page.screenshot({ fullPage: false });
  const file = join(SCREENSHOTS, `${name}.png`);
  if (!existsSync(file)) {
    mkdirSync(SCREENSHOTS, { recursive: true });
    writeFileSync(file, shot);
    process.stderr.write(`test/links/page.e2e.test.ts: wrote the screenshot ${file}\n`);
    return;
  }
  const compare = await page.context().newPage();
  try {
    const diff = await pixelDiff(compare, readFileSync(file), shot);
    // Kept after the run (outside the temp folders the test removes), to look at.
    const actual = join(tmpdir(), 'optout-links-screenshots', `${name}.png`);
    if (!diff.sameSize || diff.changed > diff.width * diff.height * 0.01) {
      mkdirSync(dirname(actual), { recursive: true });
      writeFileSync(actual, shot);
    }
    expect(diff.sameSize, `${name}: size differs from ${file}`).toBe(true);
    expect(diff.changed, `${name}: ${diff.changed} pixels differ from ${file} (this run's: ${actual})`).toBeLessThanOrEqual(diff.width * diff.height * 0.01);
  } finally {
    await compare.close();
  }
}

describe.skipIf(executablePath === undefined)(`the unsubscribe page in headless Chromium${executablePath === undefined ? ` (skipped: ${MISSING})` : ''}`, () => {
  it('shows the masked address, unsubscribes on the button, offers undo, and undoes', async () => {
    const link = await unsubscribeLink(store.store, 'alex.morgan@example.org', { unit: 'newsletter', baseUrl: base });
    // A phone's viewport, without JavaScript: the page must work as plain HTML.
    const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 640 }, deviceScaleFactor: 1 });
    try {
      const page = await context.newPage();
      // Failures surface as errors that name the step, well within the test's time.
      page.setDefaultTimeout(15_000);
      const problems: string[] = [];
      page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text()); });
      page.on('pageerror', (e) => problems.push(e.message));

      const res = await page.goto(link.url);
      expect(res?.status()).toBe(200);
      expect(await page.getAttribute('html', 'lang')).toBe('en');
      await expect.poll(() => page.getByTestId('address').textContent()).toBe('a\u2022\u2022\u2022@example.org');
      expect(await page.textContent('main')).not.toContain('alex');
      const button = page.getByRole('button', { name: 'Unsubscribe' });
      expect(await button.isVisible()).toBe(true);
      // The inline stylesheet applies: the CSP names it by its hash.
      const box = await button.boundingBox();
      expect(box?.height ?? 0).toBeGreaterThanOrEqual(44);
      expect((await store.check({ email: 'alex.morgan@example.org', unit: 'newsletter' })).eligible).toBe(true);
      await expectScreenshot(page, 'confirm');

      await Promise.all([page.waitForURL(link.url, { waitUntil: 'load' }), button.click()]);
      await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toBe('You are unsubscribed');
      expect(await page.getByTestId('address').textContent()).toBe('a\u2022\u2022\u2022@example.org');
      expect((await store.check({ email: 'alex.morgan@example.org', unit: 'newsletter' })).eligible).toBe(false);
      const undo = page.getByRole('button', { name: 'Undo' });
      expect(await undo.isVisible()).toBe(true);
      await expectScreenshot(page, 'done');

      await Promise.all([page.waitForURL(link.url, { waitUntil: 'load' }), undo.click()]);
      await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toBe('Unsubscribe undone');
      expect((await store.check({ email: 'alex.morgan@example.org', unit: 'newsletter' })).eligible).toBe(true);
      expect(await page.getByRole('button', { name: 'Unsubscribe' }).isVisible()).toBe(true);
      expect(await context.cookies()).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
