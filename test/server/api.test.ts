/**
 * The HTTP API end to end: a tiny model trained here, served by the real worker pool on a
 * loopback port, driven with fetch. Good images of every format, each kind of bad and hostile
 * upload, the limits, the stream, the no-JavaScript form, the model page, health and metrics.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RunningServer } from '../../server/listen.ts';
import { form, image, pngHeaderClaiming, readSse, serve, trainServerModel, type TrainedModel } from './helpers.ts';
import { toSentence } from '../../model/text/sentence.js';

let model: TrainedModel;
let server: RunningServer;
let vocab: Set<string>;
const MAX_BYTES = 200_000;
const MAX_PIXELS = 512 * 512;

const CARD = 'What it knows: the `tiny` test world of **six** images, not photographs.';

before(async () => {
  model = await trainServerModel();
  // The model's card: the first paragraph of its README, shown on the pages.
  const { writeFile } = await import('node:fs/promises');
  await writeFile(
    `${model.modelDir}/README.md`,
    `# A tiny test model\n\n${CARD}\nIt knows nothing else.\n\n## How it was made\n\nBy the test.\n`,
  );
  server = await serve(model.modelDir, { limits: { maxBytes: MAX_BYTES, maxPixels: MAX_PIXELS } });
  const { readFile } = await import('node:fs/promises');
  const { readCheckpointConfig } = await import('../../model/io/checkpoint.ts');
  const { dir } = await readCheckpointConfig(model.modelDir);
  vocab = new Set((JSON.parse(await readFile(`${dir}/vocab.json`, 'utf8')) as { words: string[] }).words);
});

after(async () => {
  await server?.close();
  await model?.cleanup();
});

const post = (path: string, body: FormData, headers: Record<string, string> = {}) =>
  fetch(server.url + path, { method: 'POST', body, headers });

interface CaptionJson {
  caption: string;
  sentence: string;
  words: string[];
  wordProbs: number[];
  logProb: number;
  nbest: { caption: string; sentence: string; logProb: number; prob: number }[];
  model: string;
  backend: string;
  image: { format: string; width: number; height: number };
}

test('health and readiness', async () => {
  const health = await fetch(`${server.url}/healthz`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: 'ok' });
  const ready = await fetch(`${server.url}/readyz`);
  assert.equal(ready.status, 200);
  const body = (await ready.json()) as { ready: boolean; workers: number };
  assert.equal(body.ready, true);
  assert.equal(body.workers, 1);
});

test('POST /api/captions captions a PNG: words from the vocabulary, probabilities, n-best best first', async () => {
  const res = await post('/api/captions', form(await image('png')));
  assert.equal(res.status, 200);
  const r = (await res.json()) as CaptionJson;
  assert.ok(r.words.length >= 1 && r.words.length <= 6, r.caption);
  assert.equal(r.caption, r.words.join(' '));
  // The tokens stay as the model wrote them; the sentence is for people.
  assert.equal(r.sentence, toSentence(r.words));
  assert.equal(r.sentence, `${r.caption[0]!.toUpperCase()}${r.caption.slice(1)}.`);
  for (const h of r.nbest) assert.equal(h.sentence, toSentence(h.caption.split(' ')));
  for (const w of r.words) assert.ok(vocab.has(w), `"${w}" is in the vocabulary`);
  assert.equal(r.wordProbs.length, r.words.length);
  for (const p of r.wordProbs) assert.ok(p > 0 && p <= 1, String(p));
  // log p(caption) includes <end>, so it is at most the sum of the words' log-probabilities.
  assert.ok(r.logProb <= r.wordProbs.reduce((s, p) => s + Math.log(p), 0) + 1e-9);
  assert.equal(r.nbest.length, 3);
  assert.equal(r.nbest[0]!.caption, r.caption);
  for (let i = 1; i < r.nbest.length; i++)
    assert.ok(r.nbest[i - 1]!.logProb >= r.nbest[i]!.logProb - 1e-9, 'n-best sorted');
  for (const h of r.nbest) assert.ok(Math.abs(h.prob - Math.exp(h.logProb)) < 1e-12);
  assert.equal(r.backend, 'cpu');
  assert.deepEqual(r.image, { format: 'png', width: 48, height: 48 });
});

test('every accepted format is captioned, and the type comes from the bytes, not the name or Content-Type', async () => {
  for (const format of ['jpeg', 'webp', 'gif', 'avif', 'tiff'] as const) {
    const res = await post('/api/captions', form(await image(format), 'upload.txt', 'text/plain'));
    assert.equal(res.status, 200, format);
    assert.equal(((await res.json()) as CaptionJson).image.format, format);
  }
});

test('the same image gets the same caption with greedy decoding (deterministic)', async () => {
  const bytes = await image('png', 48, 48, '#2040e0');
  const a = (await (
    await post('/api/captions', form(bytes, 'a.png', 'image/png', { strategy: 'greedy' }))
  ).json()) as CaptionJson;
  const b = (await (
    await post('/api/captions', form(bytes, 'a.png', 'image/png', { strategy: 'greedy' }))
  ).json()) as CaptionJson;
  assert.equal(a.caption, b.caption);
  assert.equal(a.logProb, b.logProb);
  assert.equal(a.nbest.length, 1);
});

async function expectError(res: Response, status: number, pattern: RegExp, what = ''): Promise<void> {
  const body = (await res.json()) as { error: { status: number; message: string } };
  assert.equal(res.status, status, `${what}: ${body.error?.message}`);
  assert.equal(body.error.status, status);
  assert.match(body.error.message, pattern);
}

test('bad and hostile uploads get a 4xx with a clear message', async () => {
  const jpeg = await image('jpeg', 64, 64);
  const png = await image('png');
  const cases: [string, FormData, number, RegExp][] = [
    ['zero bytes', form(new Uint8Array(0)), 400, /empty/],
    [
      'SVG called .png',
      form(
        Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        'x.png',
        'image/png',
      ),
      415,
      /SVG/,
    ],
    ['a PDF', form(Buffer.from('%PDF-1.4\n'), 'x.jpg', 'image/jpeg'), 415, /PDF/],
    ['text', form(Buffer.from('hello'), 'x.gif', 'image/gif'), 415, /unsupported file type/],
    ['corrupt PNG', form(Buffer.concat([png.subarray(0, 8), Buffer.alloc(40, 7)])), 400, /PNG file is corrupt/],
    ['truncated JPEG', form(jpeg.subarray(0, jpeg.length >> 1), 'x.jpg', 'image/jpeg'), 400, /truncated or corrupt/],
    ['decompression bomb', form(pngHeaderClaiming(50_000, 50_000)), 413, /50000×50000.*limit is 262144/],
    ['over the pixel limit', form(await image('png', 600, 600)), 413, /600×600/],
    [
      'over the byte limit',
      form(Buffer.concat([png, Buffer.alloc(MAX_BYTES)])),
      413,
      new RegExp(`${MAX_BYTES}-byte limit`),
    ],
  ];
  for (const [name, body, status, pattern] of cases) {
    await expectError(await post('/api/captions', body), status, pattern, name);
  }
});

test('malformed requests: no file, a file in the wrong field, two files, not multipart, bad options', async () => {
  const png = await image('png');
  const noFile = new FormData();
  noFile.append('strategy', 'greedy');
  await expectError(await post('/api/captions', noFile), 400, /no image/);
  const wrongField = new FormData();
  wrongField.append('picture', new Blob([new Uint8Array(png)]), 'x.png');
  await expectError(await post('/api/captions', wrongField), 400, /unexpected file field "picture"/);
  const two = form(png);
  two.append('image', new Blob([new Uint8Array(png)]), 'y.png');
  await expectError(await post('/api/captions', two), 400, /./);
  const json = await fetch(`${server.url}/api/captions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"image":"x"}',
  });
  await expectError(json, 400, /no image/);
  await expectError(
    await post('/api/captions', form(png, 'x.png', 'image/png', { strategy: 'best' })),
    400,
    /strategy/,
  );
  await expectError(
    await post('/api/captions', form(png, 'x.png', 'image/png', { beamWidth: '99' })),
    400,
    /beamWidth/,
  );
  await expectError(
    await post('/api/captions', form(png, 'x.png', 'image/png', { nBest: '4' })),
    400,
    /nBest 4 is more than beamWidth 3/,
  );
  await expectError(
    await post('/api/captions', form(png, 'x.png', 'image/png', { '<b>x</b>': '1' })),
    400,
    /unknown field/,
  );
  await expectError(
    await post('/api/captions', form(png, 'x.png', 'image/png', { antiLm: '-1' })),
    400,
    /field "antiLm" must be a number from 0 to 10/,
  );
  await expectError(
    await post('/api/captions', form(png, 'x.png', 'image/png', { antiLm: '0.1', antiLmPlausibility: '0' })),
    400,
    /"antiLmPlausibility" must be in \(0, 1\]/,
  );
  const noBoundary = await fetch(`${server.url}/api/captions`, {
    method: 'POST',
    headers: { 'content-type': 'multipart/form-data' },
    body: 'xx',
  });
  await expectError(noBoundary, 400, /malformed multipart body/);
  const cutShort = await fetch(`${server.url}/api/captions`, {
    method: 'POST',
    headers: { 'content-type': 'multipart/form-data; boundary=b' },
    body: '--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n\x89PNG',
  });
  await expectError(cutShort, 400, /malformed multipart body/);
  const nope = await fetch(`${server.url}/api/nope`);
  await expectError(nope, 404, /no page/);
});

test('decoding fields named like built-in properties are unknown fields: 400, never echoed', async () => {
  const png = await image('png');
  for (const name of ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__']) {
    for (const path of ['/api/captions', '/api/captions/stream']) {
      const body = new FormData();
      body.append(name, '1');
      body.append('image', new Blob([new Uint8Array(png)], { type: 'image/png' }), 'x.png');
      await expectError(await post(path, body), 400, new RegExp(`^unknown field "${name}"; expected strategy,`), name);
    }
  }
});

test('a decoding field the chosen strategy does not use is a 400 naming it; the page form’s beam width is not', async () => {
  const png = await image('png');
  const refused: [Record<string, string>, RegExp][] = [
    [{ topK: '5' }, /^field "topK" applies to sampling, not to beam search: send strategy=sample$/],
    [{ strategy: 'beam', temperature: '0.7' }, /^field "temperature" applies to sampling, not to beam search/],
    [{ strategy: 'greedy', beamWidth: '3' }, /^field "beamWidth" applies to beam search, not to greedy decoding/],
    [{ strategy: 'sample', nBest: '2' }, /^field "nBest" applies to beam search, not to sampling/],
    [{ strategy: 'greedy', seed: '4' }, /^field "seed" applies to sampling, not to greedy decoding/],
  ];
  for (const [fields, pattern] of refused) {
    for (const path of ['/api/captions', '/api/captions/stream'])
      await expectError(
        await post(path, form(png, 'x.png', 'image/png', fields)),
        400,
        pattern,
        JSON.stringify(fields),
      );
  }
  // With the strategy that uses them, the same fields are taken and echoed.
  const sampled = await post(
    '/api/captions',
    form(png, 'x.png', 'image/png', { strategy: 'sample', topK: '5', seed: '4' }),
  );
  assert.equal(sampled.status, 200);
  assert.deepEqual(((await sampled.json()) as { options: unknown }).options, { strategy: 'sample', topK: 5, seed: 4 });
  // The no-JavaScript form always sends its Beam width field: with greedy decoding it is dropped, not refused…
  const page = await post('/', form(png, 'x.png', 'image/png', { strategy: 'greedy', beamWidth: '3' }), {
    accept: 'text/html',
  });
  assert.equal(page.status, 200);
  assert.match(await page.text(), /backend \(greedy\)/);
  // … while a field the form does not have is refused there too.
  const odd = await post('/', form(png, 'x.png', 'image/png', { strategy: 'greedy', topK: '3' }), {
    accept: 'text/html',
  });
  assert.equal(odd.status, 400);
  assert.match(await odd.text(), /field &quot;topK&quot; applies to sampling/);
});

test('the stream sends start, one word event per word as it is chosen, then done with the full result', async () => {
  const res = await post(
    '/api/captions/stream',
    form(await image('png'), 'x.png', 'image/png', { strategy: 'greedy' }),
  );
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const records = await readSse(res);
  assert.equal(records[0]!.event, 'start');
  const done = records[records.length - 1]!;
  assert.equal(done.event, 'done');
  const result = done.data as unknown as CaptionJson;
  const words = records.filter((r) => r.event === 'word');
  assert.equal(words.length, result.words.length);
  words.forEach((w, i) => {
    assert.equal(w.data.index, i);
    assert.equal(w.data.word, result.words[i]);
    assert.equal(w.data.prob, result.wordProbs[i]);
  });
});

test('a beam-search stream sends the best hypothesis after each step', async () => {
  const res = await post(
    '/api/captions/stream',
    form(await image('png'), 'x.png', 'image/png', { strategy: 'beam', beamWidth: '3' }),
  );
  const records = await readSse(res);
  const hyps = records.filter((r) => r.event === 'hypothesis');
  assert.ok(hyps.length >= 1);
  const result = records[records.length - 1]!.data as unknown as CaptionJson;
  assert.equal(result.nbest.length, 3);
});

test('a refused stream is an ordinary status and JSON error, not an event stream', async () => {
  const res = await post('/api/captions/stream', form(Buffer.from('<svg/>')));
  assert.match(res.headers.get('content-type') ?? '', /json/);
  await expectError(res, 415, /SVG/);
});

test('pages: security headers, a CSP without inline script, static files with their types', async () => {
  const res = await fetch(server.url + '/');
  assert.equal(res.status, 200);
  const csp = res.headers.get('content-security-policy') ?? '';
  // WebAssembly may compile (captioning on the device); JavaScript may not be eval'd nor inlined.
  assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'(;|$)/);
  assert.doesNotMatch(csp, /unsafe-inline|'unsafe-eval'/);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(res.headers.get('x-frame-options'), 'DENY');
  assert.equal(res.headers.get('x-powered-by'), null);
  const html = await res.text();
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline <script>');
  assert.doesNotMatch(html, /\sstyle=|\son[a-z]+=/, 'no inline style or event-handler attributes');
  assert.match(html, /<form[^>]*method="post"[^>]*enctype="multipart\/form-data"/);
  const js = await fetch(server.url + '/static/app.js');
  assert.match(js.headers.get('content-type') ?? '', /^(text|application)\/javascript/);
  const css = await fetch(server.url + '/static/style.css');
  assert.match(css.headers.get('content-type') ?? '', /^text\/css/);
  assert.equal((await fetch(server.url + '/static/../app.ts')).status, 404);
});

test('without JavaScript: a plain form POST renders the finished caption with its alternatives', async () => {
  const res = await post('/', form(await image('png'), 'x.png', 'image/png', { strategy: 'beam', beamWidth: '2' }), {
    accept: 'text/html',
  });
  assert.equal(res.status, 200);
  const html = await res.text();
  const words = [...html.matchAll(/<span class="word c(\d+)" title="p = ([\d.]+)">([^<]+)<\/span>/g)];
  assert.ok(words.length >= 1, 'the caption words, each shaded');
  for (const [, shade, p] of words) assert.equal(Number(shade), Math.round(Number(p) * 10));
  assert.equal([...html.matchAll(/<li><span class="alt-caption">/g)].length, 2, 'two alternatives for beam width 2');
  assert.match(html, /<img id="preview"[^>]* src="data:image\/jpeg;base64,/);
  assert.match(html, /model <strong>[^<]+<\/strong> on the <strong>cpu<\/strong> backend/);
});

test('user-supplied strings are escaped in pages', async () => {
  const evil = '<img src=x onerror=alert(1)>';
  const res = await post('/', form(await image('png'), 'x.png', 'image/png', { [evil]: '1' }), { accept: 'text/html' });
  assert.equal(res.status, 400);
  const html = await res.text();
  assert.ok(!html.includes(evil), 'not echoed raw');
  assert.ok(html.includes('&lt;img src&#x3D;x onerror&#x3D;alert(1)&gt;'), 'echoed escaped');
  const notFound = await (
    await fetch(`${server.url}/%3Cscript%3Ealert(1)%3C%2Fscript%3E`, { headers: { accept: 'text/html' } })
  ).text();
  assert.ok(!notFound.includes('<script>alert'));
});

test('the home page and the model page say what the model knows, from the first paragraph of its README', async () => {
  const plain = 'What it knows: the tiny test world of six images, not photographs. It knows nothing else.';
  const home = await (await fetch(server.url + '/')).text();
  assert.match(
    home,
    /<p class="model-card" id="model-card"><strong>What model [^<]+ knows:<\/strong> ([^<]+) <a href="\/model">/,
  );
  assert.equal(/<p class="model-card" id="model-card">.*?<\/strong> ([^<]+) <a/.exec(home)?.[1], plain);
  const page = await (await fetch(server.url + '/model')).text();
  assert.ok(page.includes(`<p class="model-card">${plain}</p>`));
  assert.match(page, /\(A tiny test model\)/);
  assert.doesNotMatch(page, /How it was made/, 'only the first paragraph');

  const { readModelCard } = await import('../../server/model-info.ts');
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const bare = await mkdtemp(`${tmpdir()}/captioner-card-`);
  assert.equal(await readModelCard(bare), null, 'no README, no card');
  await rm(bare, { recursive: true });
});

test('the model page shows the configuration, the data set, the training curves and evaluation figures', async () => {
  const { mkdir, writeFile } = await import('node:fs/promises');
  // What `captioner eval` leaves in MODEL_DIR/eval-SPLIT/metrics.json (numbers made up here).
  await mkdir(`${model.modelDir}/eval-val`, { recursive: true });
  const evaluation = {
    decoding: 'beam search, width 3',
    splits: {
      val: {
        split: 'val',
        images: 2,
        scores: { 'BLEU-4': 0.25, 'CIDEr-D': 1.5 },
        perImage: { img0: { 'CIDEr-D': 9 } },
      },
    },
  };
  await writeFile(`${model.modelDir}/eval-val/metrics.json`, JSON.stringify(evaluation));
  const res = await fetch(server.url + '/model');
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.match(html, /&quot;hiddenSize&quot;: 32/);
  assert.match(html, /Data set<\/dt><dd>tiny \(test\)/);
  // train wrote the training captions' word pairs with anti-LM off.
  assert.match(html, /Decoding<\/dt><dd>plain by default; <code>language-prior.json<\/code> allows anti-LM/);
  assert.match(html, /<figcaption>Loss per token<\/figcaption>/);
  assert.match(html, /<path d="M[\d.]+,[\d.]+( L[\d.]+,[\d.]+){4,}"/, 'a training-loss curve with the logged steps');
  assert.match(
    html,
    /<caption>Decoded by beam search, width 3 <span class="hint">\(<code>eval-val\/metrics.json<\/code>\)/,
  );
  assert.match(html, /<th scope="col">val<\/th>/);
  assert.match(html, /<tr><th scope="row">CIDEr-D<\/th><td>1.50<\/td><\/tr>/);
  assert.match(html, /<tr><th scope="row">images<\/th><td>2<\/td><\/tr>/);
  // The architecture in words: the tiny model has no attention.
  assert.match(
    html,
    /<dt>Architecture<\/dt><dd>A CNN of \d convolution blocks [^<]* decoder of 32 units, without attention/,
  );
  assert.doesNotMatch(html, /perImage/);
});

test('metrics count requests, captions and failures, and report the queue', async () => {
  const before = await (await fetch(server.url + '/metrics')).text();
  const captions = (text: string) =>
    [...text.matchAll(/^captioner_captions_total\{[^}]*\} (\d+)$/gm)].reduce((s, m) => s + Number(m[1]), 0);
  await post('/api/captions', form(await image('png'), 'x.png', 'image/png', { strategy: 'greedy' }));
  const res = await fetch(server.url + '/metrics');
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0.0.4/);
  const text = await res.text();
  assert.equal(captions(text), captions(before) + 1);
  assert.match(text, /^captioner_http_requests_total\{method="POST",route="\/api\/captions",status="200"\} \d+$/m);
  assert.match(text, /^captioner_http_requests_total\{method="POST",route="\/api\/captions",status="415"\} \d+$/m);
  assert.match(text, /^captioner_http_request_duration_seconds_bucket\{route="\/api\/captions",le="\+Inf"\} \d+$/m);
  assert.match(text, /^captioner_queue_length 0$/m);
  assert.match(text, /^captioner_decode_duration_seconds_count \d+$/m);
  // The process's figures, which the soak test (scripts/soak.ts) samples.
  const rss = Number(/^process_resident_memory_bytes (\d+)$/m.exec(text)?.[1]);
  assert.ok(rss > 10 * 2 ** 20 && rss < 16 * 2 ** 30, `resident memory ${rss} bytes`);
  const delay = (q: string) =>
    Number(new RegExp(`^nodejs_eventloop_delay_seconds\\{quantile="${q}"\\} (\\S+)$`, 'm').exec(text)?.[1]);
  assert.ok(delay('0.5') >= 0 && delay('0.5') <= delay('0.99') && delay('0.99') <= delay('1') && delay('1') > 0, text);
});

test('the worker holds no more tensors after captioning than before', async () => {
  const tensors = async () =>
    ((await (await fetch(server.url + '/readyz')).json()) as { workerTensors: number[] }).workerTensors[0]!;
  await post('/api/captions', form(await image('png'))); // warm up
  const first = await tensors();
  for (const strategy of ['greedy', 'beam', 'sample'])
    await post('/api/captions', form(await image('png'), 'x.png', 'image/png', { strategy }));
  assert.equal(await tensors(), first);
  // /metrics reports the same count, by worker thread.
  const metrics = await (await fetch(server.url + '/metrics')).text();
  assert.match(metrics, new RegExp(`^captioner_worker_tensors\\{worker="\\d+"\\} ${first}$`, 'm'));
});

test("`serve --beam`: a request that names no beam width gets the server's, and the page starts at it", async () => {
  const wide = await serve(model.modelDir, { defaultBeamWidth: 5 });
  try {
    const page = await (await fetch(wide.url + '/')).text();
    assert.match(page, /name="beamWidth" id="beam-width" min="1" max="10" value="5"/);
    const res = await fetch(wide.url + '/api/captions', { method: 'POST', body: form(await image('png')) });
    assert.equal(res.status, 200);
    const json = (await res.json()) as CaptionJson & {
      options: { strategy: string; beamWidth: number; nBest: number };
    };
    assert.deepEqual(json.options, { strategy: 'beam', beamWidth: 5, nBest: 3 });
    // A request's own width still wins, with no more alternatives than it holds.
    const narrow = (await (
      await fetch(wide.url + '/api/captions', {
        method: 'POST',
        body: form(await image('png'), 'x.png', 'image/png', { beamWidth: '2' }),
      })
    ).json()) as { options: unknown };
    assert.deepEqual(narrow.options, { strategy: 'beam', beamWidth: 2, nBest: 2 });
  } finally {
    await wide.close();
  }
  assert.match(await (await fetch(server.url + '/')).text(), /value="3"/, 'the default stays 3');
  await assert.rejects(
    serve(model.modelDir, { defaultBeamWidth: 11 }),
    /defaultBeamWidth must be a whole number from 1 to 10/,
  );
});
