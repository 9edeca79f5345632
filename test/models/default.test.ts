/**
 * The bundled default model (models/default) on a fresh clone: it loads, it describes shapes
 * scenes it has never seen about as well as its README claims, and `npm start`'s server says
 * what it knows. Scenes come from a seed the training data never used, drawn and encoded to PNG
 * exactly as `captioner data shapes` does, then read back through the one preprocessing path.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { shapesScene } from '../../data-scripts/shapes/generate.ts';
import { encodePng, renderDrawing } from '../../data-scripts/shapes/render.ts';
import { semanticScores, type Scene } from '../../data-scripts/shapes/semantics.ts';
import type { Captioner } from '../../model/nn/captioner.ts';
import type { LanguagePrior } from '../../model/decode/prior.ts';
import { captionImages } from '../../model/decode/decode.ts';
import { imagesToTensor, loadImagePixels } from '../../model/data/image.ts';
import { loadModel } from '../../model/io/load.ts';
import type { RunningServer } from '../../server/listen.ts';
import { serve } from '../server/helpers.ts';
import { setupBackend } from '../helpers/tf.ts';

const MODEL_DIR = 'models/default';
/** A seed `captioner data shapes` was not run with for the default model (models/default/README.md). */
const SEED = 20261128;
const PER_SPLIT = 100;

await setupBackend();
let model: Captioner;
let prior: LanguagePrior | null;

before(async () => {
  ({ model, prior } = await loadModel(MODEL_DIR));
});
after(() => model?.dispose());

/**
 * The first `n` fresh scenes of `split`, rendered, as PNG bytes read back to pixels: generator v2's
 * scenes, as the model's data set (data/shapes-v2) holds, of a seed it was not made from.
 */
async function freshScenes(split: 'test' | 'test-compositional', n: number): Promise<{ pixels: Uint8Array; truth: Scene }[]> {
  const out: { pixels: Uint8Array; truth: Scene }[] = [];
  for (let i = 0; out.length < n; i++) {
    const scene = shapesScene(SEED, i, { compositionalFraction: 0.5 });
    // "test" stands for any scene without a held-out pair: none of them was trained on.
    if ((scene.split === 'test-compositional') !== (split === 'test-compositional')) continue;
    const size = model.config.imageSize;
    const png = await encodePng(await renderDrawing(scene.drawing, size, scene.noiseSeed), size);
    out.push({ pixels: await loadImagePixels(png, size), truth: scene.drawing.scene });
  }
  return out;
}

/**
 * Exact match on the first PER_SPLIT fresh scenes of `split`: beam 3, with the model's anti-LM default unless `antiLm`
 * is given. Each is decoded once, however many tests ask.
 */
function exactRate(split: 'test' | 'test-compositional', antiLm?: number): Promise<{ rate: number; captions: string[] }> {
  const key = `${split} ${antiLm ?? 'default'}`;
  if (!rates.has(key)) rates.set(key, decodeAndScore(split, antiLm));
  return rates.get(key)!;
}
const rates = new Map<string, Promise<{ rate: number; captions: string[] }>>();

async function decodeAndScore(split: 'test' | 'test-compositional', antiLm?: number): Promise<{ rate: number; captions: string[] }> {
  const scenes = await freshScenes(split, PER_SPLIT);
  const images = imagesToTensor(scenes.map((s) => s.pixels), model.config.imageSize);
  const results = captionImages(model, images, {
    strategy: 'beam',
    beamWidth: 3,
    prior,
    ...(antiLm === undefined ? {} : { antiLm }),
  });
  images.dispose();
  const captions = results.map((r) => r.caption);
  const scores = semanticScores(captions.map((caption, i) => ({ caption, truth: scenes[i]!.truth })));
  return { rate: scores.exactRate, captions };
}

// models/default/README.md measures 99.3 % (test) and 98.4 % (compositional) on the data set's
// test splits at beam 8; on these 100 fresh scenes per split at beam 3 it measured 0.99 and 0.97.
// The floors catch a model that no longer works (a preprocessing or decoding change that breaks
// it), not small drifts: they are the model's, not the project's targets (≥ 98 % and ≥ 90 %).
test('the default model describes fresh shapes scenes exactly, most of the time', async () => {
  const { rate, captions } = await exactRate('test');
  assert.ok(rate >= 0.95, `exact match ${rate} on ${PER_SPLIT} fresh scenes, e.g. ${captions.slice(0, 3).join(' | ')}`);
});

test('… and scenes with colour + shape pairs it never saw in training', async () => {
  const { rate, captions } = await exactRate('test-compositional');
  assert.ok(rate >= 0.93, `exact match ${rate} on ${PER_SPLIT} fresh compositional scenes, e.g. ${captions.slice(0, 3).join(' | ')}`);
});

// v1's anti-LM default named many more unseen pairs than plain decoding; v2 names nearly all of
// them either way, and anti-LM moves its figures by less than a point at beam 8 (its card). At
// this test's beam 3 it measured 0.99 / 0.99 (seen) and 0.97 / 0.99 (unseen) against plain: what is
// asserted is that the default is set and costs at most a few scenes in a hundred.
test('its anti-LM default is set, and costs at most a few scenes against plain decoding', async () => {
  assert.equal(prior?.antiLm.weight, 0.12, 'models/default/language-prior.json sets the default');
  for (const split of ['test', 'test-compositional'] as const) {
    const [anti, plain] = [await exactRate(split), await exactRate(split, 0)];
    assert.ok(anti.rate >= plain.rate - 0.03, `${split}: anti-LM ${anti.rate}, plain ${plain.rate}`);
  }
});

test('npm start serves the default model, and the page says what it knows', async () => {
  // As package.json's start script runs it: `captioner serve --model models/default`, the beam
  // width (8) and anti-LM its figures were measured with coming from models/default/decoding.json.
  const start = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: { start: string } }).scripts.start;
  assert.match(start, /serve --model models\/default$/);
  const server: RunningServer = await serve(MODEL_DIR);
  try {
    const home = await (await fetch(server.url + '/')).text();
    assert.match(home, /What model default knows:<\/strong>[^<]*generated shapes[^<]*never seen a photograph/);
    assert.match(home, /id="beam-width" min="1" max="10" value="8"/);
    // It was fine-tuned from an earlier run: the model page says so, and what raised its training loss.
    const page = await (await fetch(server.url + '/model')).text();
    assert.match(page, /<dt>Started from<\/dt><dd><code>[^<]+<\/code> \(fine-tuned/);
    assert.match(page, /raised by label smoothing 0\.2 and word substitution 0\.25; validation loss is plain cross-entropy/);
    assert.match(page, /<dt>Recommended decoding<\/dt><dd>beam search, width 8, anti-LM λ 0\.12 \(β 0\.15\)/);
    assert.match(page, /<dt>Decoding<\/dt><dd>anti-LM by default: each word's score loses 0\.12 × its log-probability/);
  } finally {
    await server.close();
  }
});
