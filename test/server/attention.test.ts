/**
 * Attention maps through the web app, for a tiny model with attention (a 4 × 4 grid): the JSON
 * answer carries `attention: {grid, weights}`, the very weights the model's own decoding gives
 * for that image; the stream names the grid in `start` and each `word` event carries its row
 * (each beam `hypothesis` its rows); a model without attention carries none. And the page, in
 * Debian's Chromium (playwright-core, as browser.test.ts): pointing at a word, or tabbing to it,
 * lays that word's weights over the image, visibly on a dark image too; "Show all maps" draws one
 * map per word; a word focused while the caption streams keeps its focus as the next words come.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import type { AxeResults } from 'axe-core';
import { type Browser, type Page } from 'playwright-core';
import sharp from 'sharp';
import { chromiumMissing, launchChromium, watchProblems } from '../../scripts/chromium.ts';
import { HATCH_ALPHA, MAX_ALPHA, OUTLINE_AT } from '../../server/public/attention.js';
import { captionImages } from '../../model/decode/decode.ts';
import { imagesToTensor, loadImagePixels } from '../../model/data/image.ts';
import { loadModel } from '../../model/io/load.ts';
import type { CaptionJson } from '../../server/captioning.ts';
import type { RunningServer } from '../../server/listen.ts';
import { setupBackend } from '../helpers/tf.ts';
import { form, image, readSse, serve, trainServerModel, type TrainedModel } from './helpers.ts';

await setupBackend(); // the backend the server's workers choose

const ATTENTION = { encoderPooling: 'grid', featureInput: 'attention' };

let attending: TrainedModel;
let plain: TrainedModel;
let server: RunningServer;
let plainServer: RunningServer;
let png: Buffer;
let browser: Browser | undefined;

const skip = chromiumMissing();
const available = skip === false;

before(async () => {
  attending = await trainServerModel(20, ATTENTION);
  plain = await trainServerModel(20);
  [server, plainServer] = await Promise.all([serve(attending.modelDir), serve(plain.modelDir)]);
  png = await image('png', 40, 30);
  if (available) browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await plainServer?.close();
  await attending?.cleanup();
  await plain?.cleanup();
});

async function caption(url: string, fields: Record<string, string>, picture = png): Promise<CaptionJson> {
  const res = await fetch(`${url}/api/captions`, { method: 'POST', body: form(picture, 'x.png', 'image/png', fields) });
  assert.equal(res.status, 200);
  return (await res.json()) as CaptionJson;
}

function assertRowsSumToOne(weights: number[][]): void {
  for (const [i, row] of weights.entries()) {
    assert.equal(row.length, 16, `word ${i}: a weight per grid position`);
    const sum = row.reduce((s, w) => s + w, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5, `word ${i}'s weights sum to ${sum}`);
  }
}

test("the JSON answer carries each word's weights over the grid: those the model's decoding gives", async () => {
  const { model, prior } = await loadModel(attending.modelDir);
  const tensor = imagesToTensor([await loadImagePixels(png, model.config.imageSize)], model.config.imageSize);
  try {
    for (const fields of [{ strategy: 'greedy' }, { strategy: 'beam', beamWidth: '3' }] as Record<string, string>[]) {
      const json = await caption(server.url, fields);
      assert.ok(json.attention, `${fields.strategy}: attention in the answer`);
      assert.deepEqual(json.attention.grid, [4, 4]);
      assert.equal(json.attention.weights.length, json.words.length, 'one row per word');
      assertRowsSumToOne(json.attention.weights);
      const local = captionImages(model, tensor, {
        strategy: fields.strategy as 'greedy' | 'beam',
        beamWidth: fields.beamWidth ? 3 : undefined,
        prior,
      })[0]!;
      assert.equal(json.caption, local.caption);
      assert.deepEqual(json.attention.grid, local.attention!.grid);
      // The same weights, up to the float rounding of the worker's kernels and this process's.
      json.attention.weights.forEach((row, i) =>
        row.forEach((w, p) =>
          assert.ok(
            Math.abs(w - local.attention!.weights[i]![p]!) < 1e-5,
            `${fields.strategy}: word ${i}, position ${p}`,
          ),
        ),
      );
    }
  } finally {
    tensor.dispose();
    model.dispose();
  }
});

test('the stream: start names the grid, each word event carries its row, done the whole maps', async () => {
  const res = await fetch(`${server.url}/api/captions/stream`, {
    method: 'POST',
    body: form(png, 'x.png', 'image/png', { strategy: 'greedy' }),
  });
  const records = await readSse(res);
  assert.deepEqual(records[0]!.data.attention, { grid: [4, 4] });
  const done = records.at(-1)!.data as unknown as CaptionJson;
  const rows = records.filter((r) => r.event === 'word').map((r) => r.data.attention as number[]);
  assert.ok(rows.length >= 1);
  assert.deepEqual(rows, done.attention!.weights);

  const beam = await readSse(
    await fetch(`${server.url}/api/captions/stream`, {
      method: 'POST',
      body: form(png, 'x.png', 'image/png', { strategy: 'beam', beamWidth: '3' }),
    }),
  );
  const hyps = beam.filter((r) => r.event === 'hypothesis');
  assert.ok(hyps.length >= 1);
  for (const h of hyps) assert.equal((h.data.attention as number[][]).length, (h.data.words as string[]).length);
  assertRowsSumToOne((beam.at(-1)!.data as unknown as CaptionJson).attention!.weights);
});

test('a model without attention: no attention in the answer, the start event or the word events', async () => {
  const json = await caption(plainServer.url, { strategy: 'greedy' });
  assert.ok(json.words.length >= 1);
  assert.ok(!('attention' in json));
  const records = await readSse(
    await fetch(`${plainServer.url}/api/captions/stream`, {
      method: 'POST',
      body: form(png, 'x.png', 'image/png', { strategy: 'greedy' }),
    }),
  );
  for (const r of records) assert.ok(!('attention' in r.data), `${r.event} event`);
});

/** The overlay canvas as the page drew it: its size, and the opacity (0–255) of every pixel. */
async function overlayAlpha(page: Page): Promise<{ width: number; height: number; alpha: number[]; index: string }> {
  return page.$eval('#attention-overlay', (el) => {
    const canvas = el as HTMLCanvasElement;
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    return {
      width: canvas.width,
      height: canvas.height,
      alpha: Array.from({ length: data.length / 4 }, (_, i) => data[i * 4 + 3]!),
      index: canvas.dataset.index ?? '',
    };
  });
}

/** The median of `values`. */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * Checks the overlay is drawn from `weights` (a 4 × 4 grid): over the centre square of the
 * picture (the part the model saw), the most opaque cell is the word's largest weight, and at
 * each cell's centre the opacity is MAX_ALPHA · (w / max w)², as attention.js documents (but for
 * cells whose share lies near OUTLINE_AT, where the one-pixel outline may run through the centre).
 */
function assertDrawnFrom(o: { width: number; height: number; alpha: number[] }, weights: number[], what: string): void {
  const side = Math.min(o.width, o.height);
  const [x0, y0] = [(o.width - side) / 2, (o.height - side) / 2];
  // The median over the cell: the thin outline does not move it.
  const cellMedian = weights.map((_, cell) => {
    const [r, c] = [Math.floor(cell / 4), cell % 4];
    const values: number[] = [];
    for (let y = Math.ceil(y0 + (r * side) / 4); y < y0 + ((r + 1) * side) / 4 - 1; y++)
      for (let x = Math.ceil(x0 + (c * side) / 4); x < x0 + ((c + 1) * side) / 4 - 1; x++)
        values.push(o.alpha[y * o.width + x]!);
    return median(values);
  });
  const opaquest = cellMedian.indexOf(Math.max(...cellMedian));
  const largest = weights.indexOf(Math.max(...weights));
  assert.equal(opaquest, largest, `${what}: the most opaque cell is the largest weight's`);
  const max = Math.max(...weights);
  weights.forEach((w, cell) => {
    if (Math.abs(w / max - OUTLINE_AT) < 0.1) return;
    const [r, c] = [Math.floor(cell / 4), cell % 4];
    const x = Math.floor(x0 + ((c + 0.5) * side) / 4);
    const y = Math.floor(y0 + ((r + 0.5) * side) / 4);
    const expected = 255 * MAX_ALPHA * (w / max) ** 2;
    // Within the slope of the bilinear map over the half pixel between a pixel centre and the cell's.
    assert.ok(
      Math.abs(o.alpha[y * o.width + x]! - expected) < 8,
      `${what}: cell ${cell}: ${o.alpha[y * o.width + x]} vs ${expected}`,
    );
  });
  // Outside the square (the picture is wider than tall), the model saw nothing: hatched.
  if (o.width > o.height + 2) assert.equal(o.alpha[Math.floor(o.height / 2) * o.width]!, Math.round(255 * HATCH_ALPHA));
}

test('the page: pointing at a word shades the image by its weights; all words while streaming', { skip }, async () => {
  const page = await browser!.newPage();
  const problems = watchProblems(page);
  await page.goto(server.url);
  await page.selectOption('#strategy', 'greedy');
  // Whether every word on the page had its map (was focusable) as it appeared, before the end.
  await page.evaluate(() => {
    const caption = document.getElementById('caption')!;
    const seen: boolean[] = [];
    (window as unknown as { seen: boolean[] }).seen = seen;
    new MutationObserver(() => {
      if (caption.dataset.state !== 'running') return;
      for (const w of Array.from(caption.querySelectorAll('.word'))) seen.push((w as HTMLElement).tabIndex === 0);
    }).observe(caption, { childList: true, subtree: true, attributes: true });
  });
  await page.setInputFiles('#image-input', { name: 'wide.png', mimeType: 'image/png', buffer: png });
  await page.waitForSelector('#caption[data-state="done"]', { timeout: 30_000 });
  const json = await caption(server.url, { strategy: 'greedy' });
  // The page shows the words as a sentence (the first capitalised): a span per word of the caption.
  const words = await page.$$eval('#caption .word', (els) => els.map((e) => e.textContent ?? ''));
  assert.deepEqual(
    words.map((w) => w.toLowerCase()),
    json.words,
  );
  assert.ok(await page.isVisible('#attention'), 'the maps’ controls show for a model with attention');
  assert.ok(await page.isHidden('#attention-overlay'), 'no map before a word is pointed at');
  const seen = await page.evaluate(() => (window as unknown as { seen: boolean[] }).seen);
  assert.ok(seen.length > 0 && seen.some(Boolean), 'words had their maps while the caption streamed');

  for (const [i, word] of words.entries()) {
    await page.hover(`#caption .word >> nth=${i}`);
    assert.ok(await page.isVisible('#attention-overlay'), `word ${i}: the overlay shows`);
    const o = await overlayAlpha(page);
    assert.equal(o.index, String(i));
    assertDrawnFrom(o, json.attention!.weights[i]!, `hovering "${word}" (${i})`);
    assert.match(
      (await page.textContent('#attention-label')) ?? '',
      new RegExp(`“${word}”: the model looked most at the`),
    );
  }
  await page.mouse.move(0, 0);
  assert.ok(await page.isHidden('#attention-overlay'), 'leaving the words hides the map');

  // Show all: one small map per word, labelled with its word.
  await page.click('#attention-all');
  assert.equal(await page.getAttribute('#attention-all', 'aria-pressed'), 'true');
  const figures = await page.$$eval('#attention-maps figure', (els) =>
    els.map((f) => {
      const canvas = f.querySelector('canvas')!;
      const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      return { word: f.querySelector('figcaption')!.textContent, painted: data.some((v, k) => k % 4 === 3 && v > 0) };
    }),
  );
  assert.deepEqual(
    figures.map((f) => f.word),
    words,
  );
  assert.ok(figures.every((f) => f.painted));
  // The test's own pixel readbacks earn a performance hint; anything else is a problem.
  assert.deepEqual(
    problems.filter((p) => !/willReadFrequently/.test(p)),
    [],
    'no console errors (a CSP violation would be one)',
  );
  await page.close();
});

test('the page: a word focused with the keyboard shows its map (beam search); Escape hides it', { skip }, async () => {
  const page = await browser!.newPage();
  await page.goto(server.url);
  // Beam search this time: the page draws the best hypothesis as it goes, then the result.
  await page.selectOption('#strategy', 'beam');
  await page.fill('#beam-width', '3');
  await page.setInputFiles('#image-input', { name: 'wide.png', mimeType: 'image/png', buffer: png });
  await page.waitForSelector('#caption[data-state="done"]', { timeout: 30_000 });
  const json = await caption(server.url, { strategy: 'beam', beamWidth: '3' });
  assert.deepEqual(
    await page.$$eval('#caption .word', (els) => els.map((e) => (e.textContent ?? '').toLowerCase())),
    json.words,
  );
  // Tab from the "caption on this device" switch, the control before the caption, to each word in turn.
  await page.focus('#device-toggle');
  for (let i = 0; i < json.words.length; i++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset.index ?? null);
    assert.equal(focused, String(i), `Tab reaches word ${i}`);
    assertDrawnFrom(await overlayAlpha(page), json.attention!.weights[i]!, `focusing word ${i}`);
  }
  await page.keyboard.press('Escape');
  assert.ok(await page.isHidden('#attention-overlay'), 'Escape hides the map');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'attention-all', 'then the show-all button');
  await page.close();
});

test('the page: on a dark image the overlay changes the pixels where the weight is high', { skip }, async () => {
  // Nearly black: the old overlay, which darkened where the model did not look, left it as it was.
  const dark = await sharp({ create: { width: 48, height: 48, channels: 3, background: { r: 10, g: 12, b: 14 } } })
    .png()
    .toBuffer();
  const page = await browser!.newPage();
  await page.goto(server.url);
  await page.selectOption('#strategy', 'greedy');
  await page.setInputFiles('#image-input', { name: 'dark.png', mimeType: 'image/png', buffer: dark });
  await page.waitForSelector('#caption[data-state="done"]', { timeout: 30_000 });
  const weights = (await caption(server.url, { strategy: 'greedy' }, dark)).attention!.weights[0]!;
  const box = await page.locator('#preview').boundingBox();
  assert.ok(box && box.width > 40, 'the preview shows');
  const clip = {
    x: Math.round(box.x),
    y: Math.round(box.y),
    width: Math.floor(box.width),
    height: Math.floor(box.height),
  };
  const pixels = async () => {
    const { data, info } = await sharp(await page.screenshot({ clip }))
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    return { data, width: info.width };
  };
  const bare = await pixels();
  await page.hover('#caption .word >> nth=0');
  assert.ok(await page.isVisible('#attention-overlay'));
  const shown = await pixels();
  // The centre of the largest weight's cell (the picture is square: the grid covers all of it).
  const cell = weights.indexOf(Math.max(...weights));
  const x = Math.floor(((cell % 4) + 0.5) * (clip.width / 4));
  const y = Math.floor((Math.floor(cell / 4) + 0.5) * (clip.height / 4));
  const at = (p: { data: Buffer; width: number }) => [0, 1, 2].map((ch) => p.data[(y * p.width + x) * 3 + ch]!);
  const change = Math.max(...at(shown).map((v, ch) => Math.abs(v - at(bare)[ch]!)));
  assert.ok(change > 100, `the overlay changes the dark image by ${change} of 255 where the weight is highest`);
  await page.close();
});

test(
  'the page: a word focused while the caption streams keeps its focus as the next words come',
  { skip },
  async () => {
    const page = await browser!.newPage();
    await page.goto(server.url);
    await page.selectOption('#strategy', 'greedy');
    // Focus the first word as soon as it has its map, then note at every later change of the
    // caption whether it still has the focus.
    await page.evaluate(() => {
      const caption = document.getElementById('caption')!;
      const w = window as unknown as { focused: Element | null; kept: boolean[]; wordsWhenFocused: number };
      w.focused = null;
      w.kept = [];
      new MutationObserver(() => {
        if (!w.focused) {
          const first = caption.querySelector<HTMLElement>('.word');
          if (caption.dataset.state === 'running' && first?.tabIndex === 0) {
            first.focus();
            w.focused = first;
            w.wordsWhenFocused = caption.querySelectorAll('.word').length;
          }
        } else {
          w.kept.push(document.activeElement === w.focused);
        }
      }).observe(caption, { childList: true, subtree: true, attributes: true });
    });
    await page.setInputFiles('#image-input', { name: 'wide.png', mimeType: 'image/png', buffer: png });
    await page.waitForSelector('#caption[data-state="done"]', { timeout: 30_000 });
    const after = await page.evaluate(() => {
      const w = window as unknown as { focused: Element | null; kept: boolean[]; wordsWhenFocused: number };
      return {
        focusedWhileStreaming: w.focused !== null,
        wordsWhenFocused: w.wordsWhenFocused,
        wordsAtEnd: document.querySelectorAll('#caption .word').length,
        kept: w.kept,
        stillFocused: document.activeElement === w.focused,
        focusedIndex: (document.activeElement as HTMLElement | null)?.dataset.index ?? null,
      };
    });
    assert.ok(after.focusedWhileStreaming, 'the first word could be focused while the caption streamed');
    assert.ok(after.wordsAtEnd > after.wordsWhenFocused, 'more words came after it was focused');
    assert.ok(
      after.kept.length > 0 && after.kept.every(Boolean),
      `focus kept at every change: ${after.kept.join(' ')}`,
    );
    assert.ok(after.stillFocused, 'the same word element has the focus at the end');
    assert.equal(after.focusedIndex, '0');
    assert.ok(await page.isVisible('#attention-overlay'), 'and its map still shows');
    await page.close();
  },
);

test('the page: a model without attention shows no map controls', { skip }, async () => {
  const page = await browser!.newPage();
  await page.goto(plainServer.url);
  await page.selectOption('#strategy', 'greedy');
  await page.setInputFiles('#image-input', { name: 'wide.png', mimeType: 'image/png', buffer: png });
  await page.waitForSelector('#caption[data-state="done"]', { timeout: 30_000 });
  assert.ok(await page.isHidden('#attention'));
  assert.deepEqual(await page.$$eval('#caption .word', (els) => els.map((e) => e.getAttribute('tabindex'))), [
    ...Array<null>(await page.$$eval('#caption .word', (els) => els.length)).fill(null),
  ]);
  await page.close();
});

test('the page with the maps shown passes axe-core with no serious or critical violation', { skip }, async () => {
  const axeSource = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  const page = await browser!.newPage();
  await page.goto(server.url);
  await page.setInputFiles('#image-input', { name: 'wide.png', mimeType: 'image/png', buffer: png });
  await page.waitForSelector('#caption[data-state="done"]', { timeout: 30_000 });
  await page.focus('#caption .word >> nth=0');
  await page.click('#attention-all');
  await page.focus('#caption .word >> nth=0');
  assert.ok(await page.isVisible('#attention-overlay'));
  assert.ok(await page.isVisible('#attention-maps'));
  // axe runs through the DevTools protocol, which the page's CSP does not govern (as accessibility.test.ts).
  await page.evaluate(axeSource);
  const results = await page.evaluate(() =>
    (window as unknown as { axe: { run(c: Document, o: object): Promise<AxeResults> } }).axe.run(document, {
      resultTypes: ['violations'],
    }),
  );
  const serious = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(
    serious.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`),
    [],
  );
  await page.close();
});
