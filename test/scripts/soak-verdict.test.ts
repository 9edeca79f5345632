/**
 * The soak test's verdict (scripts/soak/verdict.ts) on made-up runs: a growing memory series
 * fails and a flat one passes (garbage-collection swings included), a 500 fails while 503 and
 * 504 pass, a hostile request answered 200 fails, a worker's growing tensor count fails. And
 * the loopback check that keeps the soak on this machine.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isLoopbackHost } from '../../scripts/soak/traffic.ts';
import {
  judge,
  quantile,
  rssTrend,
  tensorTrends,
  theilSenSlope,
  type KindSpec,
  type Sample,
  type VerdictInput,
} from '../../scripts/soak/verdict.ts';

const MB = 1024 * 1024;
const KINDS: KindSpec[] = [
  { name: 'caption', group: 'good', expected: ['200', '503', '504'] },
  { name: 'bomb', group: 'hostile', expected: ['413', '503'] },
  { name: 'cut-stream', group: 'disconnect', expected: ['cut', '200', '503', '504'] },
];
const GOOD_ANSWERS = { caption: { '200': 900, '503': 40, '504': 2 }, bomb: { '413': 30 }, 'cut-stream': { cut: 25 } };

/**
 * A sample a second for `minutes`: resident memory `mb(t)` plus a garbage-collection sawtooth
 * (up to `swingMB`, dropping every 20 s), one worker with `tensors(t)` live tensors.
 */
function series(minutes: number, mb: (t: number) => number, swingMB = 0, tensors = (_t: number) => 40): Sample[] {
  return Array.from({ length: minutes * 60 + 1 }, (_, t) => ({
    t,
    rssBytes: (mb(t) + swingMB * ((t % 20) / 20)) * MB,
    tensors: { '1': tensors(t) },
  }));
}

function run(overrides: Partial<VerdictInput> = {}): ReturnType<typeof judge> {
  return judge({
    kinds: KINDS,
    answers: GOOD_ANSWERS,
    samples: series(10, () => 400, 30),
    warmupEndS: 150,
    problems: {},
    ...overrides,
  });
}

test('Theil–Sen: the slope of a line, unmoved by a few wild points; quantiles interpolate', () => {
  const line = Array.from({ length: 50 }, (_, x) => ({ x, y: 3 + 0.5 * x }));
  assert.equal(theilSenSlope(line), 0.5);
  const spiked = line.map((p, i) => (i % 10 === 3 ? { x: p.x, y: p.y + 500 } : p));
  assert.ok(Math.abs(theilSenSlope(spiked) - 0.5) < 0.05, String(theilSenSlope(spiked)));
  assert.ok(Number.isNaN(theilSenSlope([{ x: 1, y: 2 }])));
  assert.equal(quantile([4, 1, 3, 2], 0.5), 2.5);
  assert.equal(quantile([4, 1, 3, 2], 1), 4);
  assert.ok(Number.isNaN(quantile([], 0.5)));
});

test('a flat memory series passes, garbage-collection swings of 30 MB included', () => {
  const verdict = run();
  assert.deepEqual(verdict.failures, []);
  assert.equal(verdict.pass, true);
  assert.ok(Math.abs(verdict.rss!.slopeMBPerMin) < 0.5, String(verdict.rss!.slopeMBPerMin));
  // Growth during warm-up (caches filling) is left out; a plateau after it passes.
  const plateau = run({ samples: series(10, (t) => 300 + Math.min(t, 120) * 1.5, 30) });
  assert.deepEqual(plateau.failures, []);
});

test('a growing memory series fails, naming the slope; growth below the noise floor in a short run does not', () => {
  const leaking = run({ samples: series(10, (t) => 400 + (t / 60) * 10, 30) });
  assert.equal(leaking.pass, false);
  assert.ok(Math.abs(leaking.rss!.slopeMBPerMin - 10) < 0.5, String(leaking.rss!.slopeMBPerMin));
  assert.match(
    leaking.failures.join('\n'),
    /resident memory grows: (9\.\d|10\.\d) MB\/min over the second half after warm-up/,
  );
  // 6 MB/min over the last 11 s of a 30 s run: about 1 MB, within the noise of a short run.
  const short = run({ samples: series(0.5, (t) => 400 + (t / 60) * 6), warmupEndS: 8 });
  assert.ok(short.rss!.slopeMBPerMin > 2 && short.rss!.growthMB < 24);
  assert.equal(short.pass, true, short.failures.join('\n'));
  // The same short run with a fast leak (240 MB/min) fails.
  assert.equal(run({ samples: series(0.5, (t) => 400 + t * 4), warmupEndS: 8 }).pass, false);
  // The bound is a setting.
  const strict = run({
    samples: series(10, (t) => 400 + (t / 60) * 1),
    thresholds: { maxRssSlopeMBPerMin: 0.5, rssNoiseMB: 1 },
  });
  assert.equal(strict.pass, false);
});

test('the trend is measured on the second half after warm-up, and needs samples there', () => {
  const samples = series(10, () => 400);
  const trend = rssTrend(samples, 120);
  assert.equal(trend!.fromS, 360);
  assert.equal(trend!.toS, 600);
  assert.equal(rssTrend(samples.slice(0, 100), 120), null);
  assert.match(run({ samples: samples.slice(0, 100), warmupEndS: 120 }).failures.join('\n'), /too few memory samples/);
});

test('a 500 fails; 503 and 504 do not', () => {
  assert.equal(run().pass, true, 'the good answers include 503 and 504');
  const failed = run({ answers: { ...GOOD_ANSWERS, caption: { '200': 900, '500': 1 } } });
  assert.equal(failed.pass, false);
  assert.deepEqual(failed.failures, ['caption: 1 answer(s) 500']);
  assert.equal(run({ answers: { ...GOOD_ANSWERS, bomb: { '413': 3, '502': 1 } } }).pass, false, 'a 5xx on any kind');
});

test('a hostile request answered 200 fails, and so does any answer a kind does not expect', () => {
  const accepted = run({ answers: { ...GOOD_ANSWERS, bomb: { '413': 29, '200': 1 } } });
  assert.deepEqual(accepted.failures, ['bomb: a hostile request answered 200 (1×)']);
  const wrong = run({ answers: { ...GOOD_ANSWERS, bomb: { '400': 2 } } });
  assert.deepEqual(wrong.failures, ['bomb: 2 answer(s) 400; expected 413 or 503']);
  const noAnswer = run({ answers: { ...GOOD_ANSWERS, caption: { '200': 5, error: 1 } } });
  assert.deepEqual(noAnswer.failures, ['caption: 1 answer(s) error; expected 200 or 503 or 504']);
  const problem = run({ problems: { 'xss: markup from the request echoed unescaped': 3 } });
  assert.deepEqual(problem.failures, ['xss: markup from the request echoed unescaped (3×)']);
});

test("a worker's growing tensor count fails; a steady one, and a replacement with its own count, pass", () => {
  const growing = run({
    samples: series(
      10,
      () => 400,
      0,
      (t) => 40 + Math.floor(t / 100),
    ),
  });
  assert.equal(growing.pass, false);
  assert.match(growing.failures.join('\n'), /worker 1: live tensors grew from 41 to 46 \(last 46\)/);
  // Up during warm-up (a first beam search), steady after: passes.
  assert.equal(
    run({
      samples: series(
        10,
        () => 400,
        0,
        (t) => (t < 60 ? 30 : 40),
      ),
    }).pass,
    true,
  );
  const replaced = series(10, () => 400).map((s): Sample => ({ ...s, tensors: s.t < 300 ? { '1': 40 } : { '3': 38 } }));
  assert.deepEqual(
    tensorTrends(replaced, 150).map((t) => [t.worker, t.baseline, t.max]),
    [
      ['1', 40, 40],
      ['3', 38, 38],
    ],
  );
  assert.equal(run({ samples: replaced }).pass, true);
  const none = run({ samples: series(10, () => 400).map((s) => ({ ...s, tensors: {} })) });
  assert.match(none.failures.join('\n'), /no worker tensor counts/);
});

test('the soak targets loopback only', () => {
  for (const host of ['127.0.0.1', '127.8.9.10', 'localhost', 'LOCALHOST', '::1', '[::1]'])
    assert.ok(isLoopbackHost(host), host);
  for (const host of ['0.0.0.0', '192.0.2.1', '10.0.0.1', 'example.com', '::', '128.0.0.1', 'localhost.example'])
    assert.ok(!isLoopbackHost(host), host);
});
