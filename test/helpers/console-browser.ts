// Debian's chromium driven by puppeteer-core for the web console's tests: one browser per
// test file, closed at its end; pages signed in with a key; screenshots as artefacts
// (.artefacts/console/, git-ignored), not committed.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import t from 'tap';
import type { SigningKeyPair } from '../../lib/ed25519.ts';

/** Every wait of a console test is bounded by this. */
export const WAIT_MS = 30_000;
const ARTEFACTS = join(import.meta.dirname, '../../.artefacts/console');

export async function launchBrowser(): Promise<Browser> {
  const browser = await puppeteer.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--headless=new'], protocolTimeout: WAIT_MS });
  t.teardown(() => browser.close());
  return browser;
}

export const keyFile = (key: SigningKeyPair) => JSON.stringify({ publicKey: key.publicKey, secretKey: Buffer.from(key.secretKey).toString('base64') });

/** A new tab (in its own browser context: nothing shared with other tabs) of the console at `url`, signed in as `key`. */
export async function signedIn(browser: Browser, url: string, key: SigningKeyPair): Promise<Page> {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  await page.setViewport({ width: 1280, height: 800 });
  await page.goto(`${url}/ui/`);
  await page.type('#key-text', keyFile(key));
  await page.click('#sign-in-button');
  await page.waitForSelector('#page[data-page="blueprints"][data-ready="true"]');
  return page;
}

/** Shows the page of `hash` (`terminal/bp/wl`) and waits until it is drawn. */
export async function show(page: Page, hash: string): Promise<void> {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForSelector(`#page[data-page="${hash.split('/')[0]}"][data-ready="true"]`);
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTEFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTEFACTS, `${name}.png`) });
}

/** The lines of the page's terminal (xterm.js's buffer), trailing blanks trimmed. */
export const terminalLines = (page: Page) => page.evaluate(() => {
  const buffer = (window as unknown as { zoneTerminal: { buffer: { active: { length: number; getLine(i: number): { translateToString(trim: boolean): string } | undefined } } } }).zoneTerminal.buffer.active;
  return Array.from({ length: buffer.length }, (_, i) => buffer.getLine(i)?.translateToString(true) ?? '');
});
