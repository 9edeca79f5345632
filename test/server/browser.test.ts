/**
 * The page in a real headless Chromium (Debian's `chromium`, driven by playwright-core): upload
 * an image through the file input and watch the caption stream in word by word; drop and paste
 * an image; and the same form with JavaScript off. CI installs chromium (.ci/run); there a
 * missing browser fails the test rather than skipping it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { chromiumMissing, launchChromium, watchProblems } from '../../scripts/chromium.ts';
import type { RunningServer } from '../../server/listen.ts';
import { toSentence } from '../../model/text/sentence.js';
import { formatPercent } from '../../server/views.ts';
import { form, image, serve, trainServerModel, type TrainedModel } from './helpers.ts';

const skip = chromiumMissing();
const available = skip === false;

let model: TrainedModel;
let server: RunningServer;
let browser: Browser;
let png: Buffer;

before(async () => {
  if (!available) return;
  model = await trainServerModel();
  server = await serve(model.modelDir);
  png = await image('png', 96, 96);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await model?.cleanup();
});

/** The greedy caption of `png` from the JSON API (its tokens and its sentence), to compare the page against. */
async function apiCaption(): Promise<{ caption: string; sentence: string }> {
  const res = await fetch(`${server.url}/api/captions`, {
    method: 'POST',
    body: form(png, 'x.png', 'image/png', { strategy: 'greedy' }),
  });
  return (await res.json()) as { caption: string; sentence: string };
}

test('upload through the page: the preview shows and the caption streams in word by word', { skip }, async () => {
  const page = await browser.newPage();
  const problems = watchProblems(page);
  await page.goto(server.url);
  await page.selectOption('#strategy', 'greedy');
  // Record the caption's words after every change the page makes to it.
  await page.evaluate(() => {
    const caption = document.getElementById('caption')!;
    const snapshots: string[][] = [];
    (window as unknown as { snapshots: string[][] }).snapshots = snapshots;
    new MutationObserver(() =>
      snapshots.push(Array.from(caption.querySelectorAll('.word'), (w) => w.textContent ?? '')),
    ).observe(caption, { childList: true, subtree: true });
  });
  await page.setInputFiles('#image-input', { name: 'disc.png', mimeType: 'image/png', buffer: png });
  await page.waitForSelector('#caption[data-state="done"]', { timeout: 30_000 });

  const words = await page.$$eval('#caption .word', (els) => els.map((e) => e.textContent ?? ''));
  const expected = await apiCaption();
  // One span per token, and the caption shown as the API's sentence: "A blue triangle."
  assert.equal(words.join(' ').toLowerCase(), expected.caption);
  assert.equal(((await page.textContent('#caption')) ?? '').trim(), expected.sentence);
  assert.match(expected.sentence, /^[A-Z].*\.$/);
  assert.ok(words.length >= 2, `a caption of several words to watch arrive: "${words.join(' ')}"`);
  const snapshots = await page.evaluate(() => (window as unknown as { snapshots: string[][] }).snapshots);
  const counts = snapshots.map((s) => s.length).filter((n, i, a) => n > 0 && n !== a[i - 1]);
  // Each word appeared on its own: 1, 2, …, n words (then the final, shaded rendering).
  assert.deepEqual(
    counts.slice(0, words.length),
    words.map((_, i) => i + 1),
    `snapshots: ${JSON.stringify(snapshots)}`,
  );
  for (let i = 1; i <= words.length; i++)
    assert.deepEqual(
      snapshots.find((s) => s.length === i),
      words.slice(0, i),
    );
  // Shaded by confidence, the preview shown, the model and backend named.
  const classes = await page.$$eval('#caption .word', (els) => els.map((e) => e.className));
  for (const c of classes) assert.match(c, /^word c(10|\d)$/);
  assert.equal(await page.$eval('#preview', (img) => (img as HTMLImageElement).naturalWidth), 96);
  assert.match((await page.textContent('#answered')) ?? '', /Answered by model \S+ on the cpu backend \(greedy\)/);
  assert.deepEqual(problems, [], 'no console errors (a CSP violation would be one)');
  await page.close();
});

test('beam search on the page lists the alternatives with their probabilities', { skip }, async () => {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.setInputFiles('#image-input', { name: 'disc.png', mimeType: 'image/png', buffer: png });
  await page.waitForSelector('#caption[data-state="done"]', { timeout: 30_000 });
  const alts = await page.$$eval('#nbest li', (els) => els.map((e) => e.textContent ?? ''));
  assert.equal(alts.length, 3);
  for (const a of alts) assert.match(a, /\d+(\.\d+)?% log p -?\d+\.\d\d$/);
  // The page formats probabilities with the module the server's no-JavaScript page uses.
  const values = [0, 1e-9, 0.00032, 0.0123, 0.5, 0.996];
  const shown = await page.evaluate(async (vs) => {
    const url = '/static/percent.js';
    const { formatPercent: pagePercent } = (await import(url)) as { formatPercent: (p: number) => string };
    return vs.map(pagePercent);
  }, values);
  assert.deepEqual(shown, values.map(formatPercent));
  // And captions as sentences with the module the server uses (model/text/sentence.js).
  const captions = [['a', 'dog', "'s", 'ball'], ['-lrb-', 'a', 'cat', '-rrb-'], ['i', "'m", 'here'], []];
  const sentences = await page.evaluate(async (cs) => {
    const url = '/static/sentence.js';
    const { toSentence: pageSentence } = (await import(url)) as { toSentence: (w: string[]) => string };
    return cs.map(pageSentence);
  }, captions);
  assert.deepEqual(sentences, captions.map(toSentence));
  const altSentences = await page.$$eval('#nbest .alt-caption', (els) => els.map((e) => e.textContent ?? ''));
  for (const a of altSentences) assert.match(a, /^[A-Z].*\.$/, 'each alternative shown as a sentence');
  await page.close();
});

test('drop an image on the page, or paste one', { skip }, async () => {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.selectOption('#strategy', 'greedy');
  const expected = (await apiCaption()).sentence;
  for (const how of ['drop', 'paste'] as const) {
    await page.evaluate(
      ({ bytes, how }) => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(bytes)], 'x.png', { type: 'image/png' }));
        if (how === 'drop')
          document
            .getElementById('drop-zone')!
            .dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
        else
          document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
      },
      { bytes: [...png], how },
    );
    await page.waitForSelector('#caption[data-state="done"]', { timeout: 30_000 });
    assert.equal(((await page.textContent('#caption')) ?? '').trim(), expected, how);
    await page.evaluate(() => document.getElementById('caption')!.removeAttribute('data-state'));
  }
  await page.close();
});

test('an unsupported file shows the server’s message on the page', { skip }, async () => {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.setInputFiles('#image-input', {
    name: 'x.png',
    mimeType: 'image/png',
    buffer: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'),
  });
  await page.waitForSelector('#caption[data-state="error"]', { timeout: 30_000 });
  assert.match((await page.textContent('#status')) ?? '', /unsupported file type: an SVG/);
  await page.close();
});

test('with JavaScript off, the form posts and the page shows the finished caption', { skip }, async () => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(server.url);
  await page.selectOption('#strategy', 'greedy');
  await page.setInputFiles('#image-input', { name: 'disc.png', mimeType: 'image/png', buffer: png });
  await Promise.all([page.waitForNavigation(), page.click('#submit')]);
  assert.equal(((await page.textContent('#caption')) ?? '').trim(), (await apiCaption()).sentence);
  assert.match((await page.getAttribute('#preview', 'src')) ?? '', /^data:image\/jpeg;base64,/);
  await context.close();
});
