/**
 * A model's recommended decoding (decoding.json, model/decode/recommended.ts): `caption`, `eval`
 * and `serve` decode with it unless their flags or a request say otherwise.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { applyRecommendation, parseRecommendedDecoding } from '../../model/decode/recommended.ts';
import { DecodeOptionsError } from '../../model/decode/options.ts';
import { readCheckpointConfig } from '../../model/io/checkpoint.ts';
import { writeRecommendedDecoding } from '../../model/io/decoding-file.ts';
import { runEvaluation } from '../../eval/evaluate.ts';
import { runCli } from '../helpers/cli.ts';
import { makeTinyDataset } from '../helpers/tiny-data.ts';
import { trainTinyModel } from '../helpers/tiny-model.ts';
import { serve } from '../server/helpers.ts';
import { form, image } from '../helpers/http-fixtures.ts';
import { DEFAULT_DECODE_LIMITS, defaultDecode } from '../../server/decode-options.ts';
import { setupBackend } from '../helpers/tf.ts';

await setupBackend();

let data = '';
let work = '';
let modelDir = '';
before(async () => {
  data = (await makeTinyDataset()).dir;
  work = await mkdtemp(join(tmpdir(), 'captioner-recommended-'));
  modelDir = await trainTinyModel(data, 30, { familiarityImages: 0 });
  // The model recommends beam search of width 2 with anti-LM λ 0.1.
  const { dir } = await readCheckpointConfig(modelDir);
  await writeRecommendedDecoding(dir, { strategy: 'beam', beamWidth: 2, antiLm: 0.1 });
});
after(async () => {
  await rm(data, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
  await rm(modelDir, { recursive: true, force: true });
});

test('the recommendation fills in what the caller left out, for the strategy the caller chose', () => {
  const r = parseRecommendedDecoding({ strategy: 'beam', beamWidth: 8, antiLm: 0.12 }, 'decoding.json');
  assert.deepEqual(applyRecommendation(r, { strategy: 'greedy' }, false), {
    strategy: 'beam',
    beamWidth: 8,
    antiLm: 0.12,
  });
  assert.deepEqual(applyRecommendation(r, { strategy: 'beam', beamWidth: 3 }, true), {
    strategy: 'beam',
    beamWidth: 3,
    antiLm: 0.12,
  });
  assert.deepEqual(
    applyRecommendation(r, { strategy: 'greedy', antiLm: 0 }, true),
    { strategy: 'greedy', antiLm: 0 },
    'greedy chosen: no beam width; anti-LM as given',
  );
  assert.deepEqual(applyRecommendation(null, { strategy: 'greedy' }, false), { strategy: 'greedy' });
  assert.throws(() => parseRecommendedDecoding({ strategy: 'sample' }, 'd.json'), DecodeOptionsError);
  assert.throws(() => parseRecommendedDecoding({ strategy: 'beam', beamWidth: 0 }, 'd.json'), /d\.json: "beamWidth"/);
});

test('caption decodes as the model recommends unless a flag says otherwise', async () => {
  const image = join(data, 'images/0.png');
  // --nbest alone is beam search's, accepted because the model recommends beam search; and its
  // width is the model's 2, so three alternatives are more than the beam holds.
  const three = await runCli(['caption', image, '--model', modelDir, '--nbest', '3']);
  assert.equal(three.code, 2);
  assert.match(three.stderr, /the model recommends beam search, width 2, anti-LM λ 0\.1/);
  assert.match(three.stderr, /nBest 3 is more than beamWidth 2/);
  // A flag overrides it.
  const wide = await runCli(['caption', image, '--model', modelDir, '--beam', '4', '--nbest', '3']);
  assert.equal(wide.code, 0, wide.stderr);
  assert.equal((JSON.parse(wide.stdout) as { nbest: unknown[] }).nbest.length, 3);
});

test('eval decodes as the model recommends unless told otherwise', async () => {
  const run = (settings: Record<string, number>) =>
    runEvaluation({
      modelDir,
      dataDir: data,
      split: 'val',
      batchSize: 8,
      galleryCount: 1,
      outDir: join(work, `eval-${Object.keys(settings).join('-') || 'default'}`),
      ...settings,
    });
  assert.equal((await run({})).decoding, 'beam search, width 2, anti-LM λ 0.1 (β 0.15)');
  assert.equal((await run({ beamWidth: 5 })).decoding, 'beam search, width 5, anti-LM λ 0.1 (β 0.15)');
  assert.equal((await run({ beamWidth: 1, antiLm: 0 })).decoding, 'greedy');
});

test('serve: a request that names nothing gets the model’s beam width and anti-LM; --beam overrides the width', async () => {
  const recommended = parseRecommendedDecoding({ strategy: 'beam', beamWidth: 2, antiLm: 0.1 }, 'decoding.json');
  assert.deepEqual(defaultDecode(undefined, DEFAULT_DECODE_LIMITS, recommended), {
    strategy: 'beam',
    beamWidth: 2,
    nBest: 2,
    antiLm: 0.1,
  });
  assert.equal(defaultDecode(4, DEFAULT_DECODE_LIMITS, recommended).beamWidth, 4, '`serve --beam 4`');
  assert.throws(
    () => defaultDecode(undefined, DEFAULT_DECODE_LIMITS, { strategy: 'beam', beamWidth: 12 }),
    /the model's beamWidth must be a whole number from 1 to 10/,
  );
  const server = await serve(modelDir);
  try {
    const page = await (await fetch(server.url + '/')).text();
    assert.match(page, /id="beam-width" min="1" max="10" value="2"/);
    const res = await fetch(server.url + '/api/captions', { method: 'POST', body: form(await image('png')) });
    assert.equal(res.status, 200);
    const json = (await res.json()) as { options: unknown };
    assert.deepEqual(json.options, { strategy: 'beam', beamWidth: 2, nBest: 2, antiLm: 0.1 });
  } finally {
    await server.close();
  }
});
