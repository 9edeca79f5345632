/**
 * `npm run soak` in short (about 20 s of traffic) against the tiny model: it passes, every kind of
 * traffic was sent and answered as that kind should be (refusals with their codes, hang-ups cut,
 * bursts past the queue turned away with 503), and the server's memory, event-loop delay and
 * worker tensors were sampled. Its options: --help, a non-loopback --host refused.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { formatReport, type SoakReport } from '../../scripts/soak/report.ts';
import { trainServerModel, type TrainedModel } from '../server/helpers.ts';

const SCRIPT = fileURLToPath(new URL('../../scripts/soak.ts', import.meta.url));

function soak(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

let model: TrainedModel;

before(async () => {
  model = await trainServerModel();
});

after(async () => {
  await model?.cleanup();
});

test('a short soak against the tiny model passes, having sent every kind of traffic', async () => {
  // One worker and a queue of 2, so that bursts of 11 pass the queue; a burst every 6 s. A run
  // this short cannot measure a memory trend (the allocator is still filling its arenas in the
  // first minute): the rule is tested on made-up series in soak-verdict.test.ts, and the noise
  // floor here is wide.
  const { code, stdout, stderr } = await soak([
    ...['--model', model.modelDir, '--minutes', '0.4', '--workers', '1', '--queue', '2', '--burst-every', '6'],
    ...['--sample-every', '0.5', '--rss-noise', '256', '--json'],
  ]);
  const report = JSON.parse(stdout) as SoakReport;
  const why = `${report.verdict.failures.join('\n')}\n${report.errors.join('\n')}\n${stderr.slice(-2000)}`;
  assert.deepEqual(report.verdict.failures, [], why);
  assert.equal(report.verdict.pass, true);
  assert.equal(code, 0, why);

  const answered = (kind: string, status: string) => report.answers[kind]?.[status] ?? 0;
  const groups = new Set(report.kinds.map((k) => k.group));
  assert.deepEqual([...groups].sort(), ['burst', 'disconnect', 'good', 'hostile']);
  for (const kind of report.kinds) {
    const total = Object.values(report.answers[kind.name] ?? {}).reduce((a, b) => a + b, 0);
    assert.ok(total >= 1, `${kind.name} was never sent`);
  }
  // Every hostile kind the server defends against, refused with its own code (503 when busy).
  const refusals: [string, string][] = [
    ['bomb', '413'],
    ['png16-interlaced', '413'],
    ['svg', '415'],
    ['traversal', '404'],
    ['proto-field', '400'],
    ['bad-host', '421'],
    ['bad-origin', '403'],
    ['oversized', '413'],
    ['corrupt', '400'],
  ];
  for (const [kind, status] of refusals) assert.ok(answered(kind, status) >= 1, `${kind}: no ${status}`);
  const xss = report.answers.xss ?? {};
  assert.ok((xss['400'] ?? 0) + (xss['404'] ?? 0) + (xss['415'] ?? 0) >= 1, JSON.stringify(xss));
  for (const kind of report.kinds.filter((k) => k.group === 'hostile'))
    assert.equal(answered(kind.name, '200'), 0, kind.name);
  // Clients that hung up, and the server counting them as 499.
  for (const kind of ['cut-upload', 'cut-decode', 'cut-stream']) assert.ok(answered(kind, 'cut') >= 1, kind);
  const left = Object.values(report.serverCounts).reduce((s, c) => s + (c['499'] ?? 0), 0);
  assert.ok(left >= 1, JSON.stringify(report.serverCounts));
  // Bursts past the queue: some served, some turned away.
  assert.ok(answered('burst', '503') >= 1 && answered('burst', '200') >= 1, JSON.stringify(report.answers.burst));
  assert.ok(answered('caption', '200') >= 1 && answered('stream', '200') >= 1 && answered('page-form', '200') >= 1);

  // The figures: memory, event-loop delay and tensors sampled through the run.
  assert.ok(report.samples.length >= 20, `${report.samples.length} samples`);
  assert.ok(report.rss.startMB > 10 && report.rss.endMB > 10, JSON.stringify(report.rss));
  assert.ok(report.verdict.rss && report.verdict.rss.samples >= 4);
  const delay = report.eventLoopDelayMs;
  assert.ok(delay.p50 >= 0 && delay.p50 <= delay.p99 && delay.p99 <= delay.max, JSON.stringify(delay));
  assert.equal(report.verdict.tensors.length, 1, 'one worker');
  assert.ok(report.verdict.tensors[0]!.baseline > 0);
  assert.equal(report.server.exitCode, 0, 'a graceful stop');
  assert.ok(report.durationS >= 24, String(report.durationS));

  // The same figures as a table for people.
  const text = formatReport(report);
  assert.match(text, /^requests by kind and status/m);
  assert.match(text, /^ {2}bad-host +hostile +\d+/m);
  assert.match(text, /^resident memory \(server process, worker threads included\): start \d+ MB, peak \d+ MB/m);
  assert.match(text, /^event-loop delay .*: p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms$/m);
  assert.match(text, /^ {2}worker \d+: \d+ @0\.0 min/m);
  assert.match(text, /^verdict: PASS$/m);
});

test('soak --help lists its options; a target that is not loopback is refused (exit 2)', async () => {
  const [help, remote, none] = await Promise.all([
    soak(['--help']),
    soak(['--host', '192.0.2.1', '--minutes', '1']),
    soak(['--minutes', '0']),
  ]);
  assert.equal(help.code, 0);
  for (const option of ['--minutes', '--model', '--host', '--json', '--max-rss-slope'])
    assert.ok(help.stdout.includes(option), option);
  assert.equal(remote.code, 2);
  assert.match(remote.stderr, /--host 192\.0\.2\.1 is not a loopback address/);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /--minutes must be more than 0/);
});
