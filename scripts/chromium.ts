/**
 * Headless Chromium for the page's tests and scripts/screenshot.ts: Debian's chromium
 * (`apt-get install chromium`; CHROMIUM_PATH picks another) driven by playwright-core. Without
 * the networking flags its background connections fail on a closed network.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--headless',
    ],
  });
}

/**
 * For a test's `skip`: false when the browser is there, else why the test cannot run. In CI a
 * missing browser is an error, not a skip (.ci/run installs it).
 */
export function chromiumMissing(): false | string {
  if (existsSync(CHROMIUM)) return false;
  if (process.env.CI) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium (see .ci/run)`);
  return `no browser at ${CHROMIUM} (apt-get install chromium)`;
}

/** Collects what goes wrong on `page` from now on: console errors and warnings, uncaught errors. */
export function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  return problems;
}
