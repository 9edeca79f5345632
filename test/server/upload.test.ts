/** Upload checks, decoding-option parsing, metrics text and chart layout: the web app's pure parts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDecodeOptions } from '../../server/decode-options.ts';
import { BadRequestError, TooLargeError, UnsupportedTypeError } from '../../server/errors.ts';
import { Counter, Histogram } from '../../server/metrics.ts';
import { niceTicks } from '../../eval/charts.ts';
import { layoutChart } from '../../server/model-info.ts';
import { checkImage, decodeUpload, sniffFormat } from '../../server/upload.ts';
import { image, pngHeaderClaiming } from './helpers.ts';

const LIMITS = { maxBytes: 1 << 20, maxPixels: 256 * 256, maxDecodeBytes: 64 << 20 };

test('every accepted raster format is recognised from its bytes and decodes to size² RGB', async () => {
  for (const format of ['png', 'jpeg', 'webp', 'gif', 'avif', 'tiff'] as const) {
    const bytes = await image(format, 40, 30);
    assert.equal(sniffFormat(bytes), format, format);
    const checked = await decodeUpload(bytes, 16, LIMITS);
    assert.deepEqual([checked.format, checked.width, checked.height], [format, 40, 30], format);
    assert.equal(checked.pixels.length, 16 * 16 * 3, format);
  }
});

test('an empty upload is a 400 that says it is empty', async () => {
  await assert.rejects(
    checkImage(Buffer.alloc(0), LIMITS),
    (e: unknown) => e instanceof BadRequestError && /empty/.test(e.message),
  );
});

test('SVG, PDF, HTML, text and BMP are refused as unsupported types (415), whatever they are called', async () => {
  const cases: [string, Buffer, RegExp][] = [
    [
      'svg',
      Buffer.from(
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
      ),
      /SVG/,
    ],
    [
      'svg with xml prolog',
      Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>'),
      /SVG/,
    ],
    ['pdf', Buffer.from('%PDF-1.7\n1 0 obj\n'), /PDF/],
    ['html', Buffer.from('<!doctype html><p>hi</p>'), /markup/],
    ['text', Buffer.from('just some words, not an image'), /not an image/],
    ['bmp', Buffer.from('BM\x00\x00\x00\x00'), /BMP/],
  ];
  for (const [name, bytes, pattern] of cases) {
    await assert.rejects(
      checkImage(bytes, LIMITS),
      (e: unknown) => e instanceof UnsupportedTypeError && e.status === 415 && pattern.test(e.message),
      name,
    );
  }
});

test('a file with a raster signature but a corrupt header is a 400 naming the format', async () => {
  const bytes = Buffer.concat([(await image('png')).subarray(0, 8), Buffer.from('definitely not a PNG chunk stream')]);
  await assert.rejects(
    checkImage(bytes, LIMITS),
    (e: unknown) => e instanceof BadRequestError && /PNG file is corrupt/.test(e.message),
  );
});

test('a truncated JPEG passes the header check but fails decoding with a 400', async () => {
  const whole = await image('jpeg', 64, 64);
  const cut = whole.subarray(0, Math.floor(whole.length / 2));
  await checkImage(cut, LIMITS); // the header is intact
  await assert.rejects(
    decodeUpload(cut, 16, LIMITS),
    (e: unknown) => e instanceof BadRequestError && /JPEG file is truncated or corrupt/.test(e.message),
  );
});

test('the pixel limit is checked from the header, before decoding (decompression bomb)', async () => {
  const bomb = pngHeaderClaiming(60_000, 60_000); // 3.6 gigapixels announced in 45 bytes
  const started = performance.now();
  await assert.rejects(
    checkImage(bomb, LIMITS),
    (e: unknown) => e instanceof TooLargeError && e.status === 413 && /60000×60000/.test(e.message),
  );
  assert.ok(performance.now() - started < 2000, 'refused without decoding');
  const big = await image('png', 300, 300);
  await assert.rejects(checkImage(big, LIMITS), TooLargeError);
  await checkImage(await image('png', 256, 256), LIMITS); // exactly at the limit passes
});

test('decoding options: defaults, numbers, bounds, unknown fields', () => {
  assert.deepEqual(parseDecodeOptions({}), { strategy: 'beam', beamWidth: 3, nBest: 3 });
  assert.deepEqual(parseDecodeOptions({ strategy: 'greedy', maxLength: '5' }), { strategy: 'greedy', maxLength: 5 });
  assert.deepEqual(parseDecodeOptions({ strategy: 'beam', beamWidth: '2' }), {
    strategy: 'beam',
    beamWidth: 2,
    nBest: 2,
  });
  assert.deepEqual(
    parseDecodeOptions({ strategy: 'sample', temperature: '0.7', topP: '0.9', seed: '4', beamWidth: '' }),
    {
      strategy: 'sample',
      temperature: 0.7,
      topP: 0.9,
      seed: 4,
    },
  );
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ strategy: 'best' }, /strategy/],
    [{ beamWidth: '1000' }, /beamWidth.*1 to 10/],
    [{ beamWidth: '2.5' }, /beamWidth.*whole number/],
    [{ temperature: 'hot' }, /temperature/],
    [{ maxLength: '-1' }, /maxLength/],
    [{ colour: 'red' }, /unknown field "colour"/],
    [{ beamWidth: ['2', '3'] }, /more than once/],
  ];
  for (const [fields, pattern] of bad) {
    assert.throws(
      () => parseDecodeOptions(fields),
      (e: unknown) => e instanceof BadRequestError && pattern.test(e.message),
      JSON.stringify(fields),
    );
  }
});

test('metrics render in the Prometheus text format with cumulative buckets', () => {
  const c = new Counter('x_total', 'things');
  c.inc({ route: '/a', status: '200' });
  c.inc({ status: '200', route: '/a' }); // label order does not matter
  c.inc({ route: '/b"q', status: '500' });
  assert.equal(c.get({ route: '/a', status: '200' }), 2);
  const text = c.render();
  assert.match(text, /^# TYPE x_total counter$/m);
  assert.match(text, /^x_total\{route="\/a",status="200"\} 2$/m);
  assert.match(text, /^x_total\{route="\/b\\"q",status="500"\} 1$/m);
  const h = new Histogram('lat_seconds', 'latency', [0.1, 1]);
  for (const v of [0.05, 0.5, 0.5, 3]) h.observe(v);
  const ht = h.render();
  assert.match(ht, /^lat_seconds_bucket\{le="0.1"\} 1$/m);
  assert.match(ht, /^lat_seconds_bucket\{le="1"\} 3$/m);
  assert.match(ht, /^lat_seconds_bucket\{le="\+Inf"\} 4$/m);
  assert.match(ht, /^lat_seconds_sum 4.05$/m);
  assert.match(ht, /^lat_seconds_count 4$/m);
});

test('chart layout: nice ticks and paths inside the plot area', () => {
  assert.deepEqual(niceTicks(0, 10), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(0.13, 0.91, 5), [0.2, 0.4, 0.6, 0.8]);
  const chart = layoutChart('loss', [{ label: 'train', points: [1, 2, 3, 4].map((x) => ({ x, y: 5 - x })) }], 'step')!;
  const coords = [...chart.series[0]!.path.matchAll(/[ML]([\d.]+),([\d.]+)/g)].map(
    (m) => [Number(m[1]), Number(m[2])] as const,
  );
  assert.equal(coords.length, 4);
  for (const [x, y] of coords) {
    assert.ok(
      x >= chart.plot.left && x <= chart.plot.right && y >= chart.plot.top && y <= chart.plot.bottom,
      `${x},${y}`,
    );
  }
  assert.ok(coords[0]![1] < coords[3]![1], 'a falling curve is drawn falling (SVG y grows downwards)');
  assert.equal(layoutChart('one point', [{ label: 'a', points: [{ x: 1, y: 1 }] }], 'step'), null);
});
