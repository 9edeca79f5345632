/**
 * Screenshots the page of a running `captioner serve` after captioning one image, for the
 * README: `node --import tsx scripts/screenshot.ts URL IMAGE OUT.png`. Uses Debian's chromium
 * through playwright-core (nothing is downloaded).
 */
import { launchChromium } from './chromium.ts';

const [url = 'http://127.0.0.1:3000', image, out = 'docs/screenshot.png'] = process.argv.slice(2);
if (!image) {
  process.stderr.write('usage: scripts/screenshot.ts URL IMAGE [OUT.png]\n');
  process.exit(2);
}
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 720 }, deviceScaleFactor: 1 });
  await page.goto(url);
  await page.setInputFiles('#image-input', image);
  await page.waitForSelector('#caption[data-state="done"]', { timeout: 30_000 });
  await page.screenshot({ path: out, fullPage: true });
  process.stderr.write(`wrote ${out}: "${await page.textContent('#caption')}"\n`);
} finally {
  await browser.close();
}
