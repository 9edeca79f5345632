/** The one reader of metrics.jsonl: a line cut short by a kill is dropped, any other broken line is an error. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CheckpointError } from '../../../model/io/checkpoint.ts';
import {
  METRICS_FILE,
  MetricsLogError,
  PHASES_FILE,
  appendMetrics,
  parseMetricsLog,
  readMetricsLog,
  readTrainingStages,
  truncateMetrics,
} from '../../../model/io/metrics-log.ts';

const STEP = { type: 'step', step: 10, epoch: 1, loss: 2.5, epsilon: 0.9, time: '2024-01-01T00:00:00.000Z' };
const EPOCH = { type: 'epoch', step: 20, epoch: 1, valLoss: 1.75, samples: [{ id: 'a', caption: 'a red “circle”' }] };

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'captioner-metrics-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('parse: records in order; only an unterminated last line that does not parse is dropped', () => {
  const whole = `${JSON.stringify(STEP)}\n\n${JSON.stringify(EPOCH)}\n`;
  assert.deepEqual(parseMetricsLog(whole, 'm'), { records: [STEP, EPOCH], cutShort: false });
  const killed = whole + JSON.stringify(STEP).slice(0, 17);
  assert.deepEqual(parseMetricsLog(killed, 'm'), { records: [STEP, EPOCH], cutShort: true });
  // Cut just before its newline: the record is whole, so it counts.
  assert.deepEqual(parseMetricsLog(JSON.stringify(STEP), 'm').records, [STEP]);
  assert.deepEqual(parseMetricsLog('', 'm'), { records: [], cutShort: false });
});

test('parse: a broken line before the last, or a line that is no record, is an error naming the file and line', () => {
  const broken = `${JSON.stringify(STEP)}\n{"type": "st\n${JSON.stringify(EPOCH)}\n`;
  assert.throws(
    () => parseMetricsLog(broken, 'model/metrics.jsonl'),
    (e: unknown) =>
      e instanceof MetricsLogError &&
      e instanceof CheckpointError &&
      /^model\/metrics\.jsonl:2: not a JSON line/.test(e.message),
  );
  assert.throws(() => parseMetricsLog('[1, 2]\n', 'm'), /m:1: not a metrics record/);
  assert.throws(() => parseMetricsLog('{"type": "step"}\n', 'm'), /m:1: not a metrics record \(no numeric "step"\)/);
});

test('read: [] without a log; a log that exists but cannot be read (a directory) is an error, not an empty log', async () => {
  assert.deepEqual(await readMetricsLog(join(dir, 'none', METRICS_FILE)), []);
  const model = join(dir, 'dir-log');
  await mkdir(join(model, METRICS_FILE), { recursive: true });
  await assert.rejects(readMetricsLog(join(model, METRICS_FILE)), { code: 'EISDIR' });
});

test('append → read round trip, and truncate keeps the records up to a step, byte for byte, without the cut line', async () => {
  const path = join(dir, 'run', METRICS_FILE);
  await mkdir(join(dir, 'run'));
  await writeFile(path, '');
  const records = [STEP, EPOCH, { ...STEP, step: 30 }];
  for (const r of records) await appendMetrics(path, r);
  assert.deepEqual(await readMetricsLog(path), records);
  const written = await readFile(path, 'utf8');
  await writeFile(path, written + '{"type":"step","st'); // killed mid-append
  await truncateMetrics(path, 20);
  assert.equal(await readFile(path, 'utf8'), written.split('\n').slice(0, 2).join('\n') + '\n');
  await truncateMetrics(join(dir, 'run', 'absent.jsonl'), 5);
  assert.equal(await readFile(join(dir, 'run', 'absent.jsonl'), 'utf8'), '', 'no log: an empty one');
});

test('the stages a model went through: metrics-NAME.jsonl in numeric order, then metrics.jsonl', async () => {
  const stagesDir = await mkdtemp(join(tmpdir(), 'captioner-stages-'));
  try {
    const line = (step: number) => JSON.stringify({ ...STEP, step }) + '\n';
    for (const n of [10, 2, 1]) await writeFile(join(stagesDir, `metrics-stage${n}.jsonl`), line(n));
    await writeFile(join(stagesDir, METRICS_FILE), line(99) + '{"type":"st'); // its last line cut short
    await writeFile(join(stagesDir, 'metrics-empty.jsonl'), '');
    const stages = await readTrainingStages(stagesDir);
    // stage10 after stage2 (numbers as numbers); the earlier logs are not stage1…stagek, so the
    // model's own log is the "last stage"; an empty log is no stage; the cut-short line is dropped.
    assert.deepEqual(
      stages.map((s) => [s.name, s.file, s.records.map((r) => r.step)]),
      [
        ['stage 1', 'metrics-stage1.jsonl', [1]],
        ['stage 2', 'metrics-stage2.jsonl', [2]],
        ['stage 10', 'metrics-stage10.jsonl', [10]],
        ['last stage', METRICS_FILE, [99]],
      ],
    );
    // A broken line in an earlier stage's log is an error naming it, as in metrics.jsonl.
    await writeFile(join(stagesDir, 'metrics-stage2.jsonl'), 'not json\n' + line(2));
    await assert.rejects(readTrainingStages(stagesDir), (err: Error) => {
      assert.ok(err instanceof MetricsLogError);
      assert.match(err.message, /metrics-stage2\.jsonl:1: not a JSON line/);
      return true;
    });
    // No logs at all: no stages.
    assert.deepEqual(await readTrainingStages(join(stagesDir, 'missing')), []);
  } finally {
    await rm(stagesDir, { recursive: true, force: true });
  }
});

test("a run of phases' model: each stage named after its phase, numbered when phases.json does not match", async () => {
  const stagesDir = await mkdtemp(join(tmpdir(), 'captioner-phases-'));
  try {
    const line = (step: number) => JSON.stringify({ ...STEP, step }) + '\n';
    for (const n of [1, 2]) await writeFile(join(stagesDir, `metrics-stage${n}.jsonl`), line(n));
    await writeFile(join(stagesDir, METRICS_FILE), line(3));
    const phases = (...names: string[]) =>
      writeFile(
        join(stagesDir, PHASES_FILE),
        JSON.stringify({ format: 'captioner-phased-run', phases: names.map((name) => ({ name })) }),
      );
    const names = async () => (await readTrainingStages(stagesDir)).map((s) => [s.name, s.file]);
    await phases('warm-up', 'smoothing', 'substitution');
    assert.deepEqual(await names(), [
      ['warm-up', 'metrics-stage1.jsonl'],
      ['smoothing', 'metrics-stage2.jsonl'],
      ['substitution', METRICS_FILE],
    ]);
    // A phase whose log is empty is left out, and the others keep their own names.
    await writeFile(join(stagesDir, 'metrics-stage2.jsonl'), '');
    assert.deepEqual(await names(), [
      ['warm-up', 'metrics-stage1.jsonl'],
      ['substitution', METRICS_FILE],
    ]);
    await writeFile(join(stagesDir, 'metrics-stage2.jsonl'), line(2));
    // Two phases for three logs, or a phases.json that does not parse: numbered as before.
    const numbered = [
      ['stage 1', 'metrics-stage1.jsonl'],
      ['stage 2', 'metrics-stage2.jsonl'],
      ['stage 3', METRICS_FILE],
    ];
    await phases('warm-up', 'smoothing');
    assert.deepEqual(await names(), numbered);
    await writeFile(join(stagesDir, PHASES_FILE), '{"phases": [');
    assert.deepEqual(await names(), numbered);
  } finally {
    await rm(stagesDir, { recursive: true, force: true });
  }
});
