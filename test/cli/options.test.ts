/** The CLI's shared option helpers: grouped spec flags, and one whole-number check for every verb. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError } from '../../cli/errors.ts';
import { integerFlag, kebab, optionalIntegerFlag, specGroups, specMarkdown } from '../../cli/options.ts';
import { TRAIN_DEFAULTS, TRAIN_GROUPS, TRAIN_SPEC } from '../../model/train/config.ts';
import { runCli } from '../helpers/cli.ts';

test('integerFlag: a whole number at least min, else a usage error naming the flag and the value', () => {
  assert.equal(integerFlag({ beam: 3 }, 'beam'), 3);
  assert.equal(integerFlag({ queue: 0 }, 'queue', 0), 0);
  for (const bad of [0, 2.5, NaN, '3', undefined])
    assert.throws(
      () => integerFlag({ beam: bad }, 'beam'),
      (e: unknown) => e instanceof UsageError && e.message === `--beam must be a whole number ≥ 1, got ${String(bad)}`,
    );
  assert.equal(optionalIntegerFlag({}, 'nbest'), undefined);
  assert.throws(() => optionalIntegerFlag({ nbest: -1 }, 'nbest'), /--nbest must be a whole number ≥ 1, got -1/);
});

test("specGroups: the flags of each group in order, a command's own flags first; a field of no known group is an error", () => {
  const groups = [
    { key: 'a', title: 'First', describe: '' },
    { key: 'b', title: 'Second', describe: '' },
    { key: 'c', title: 'Empty', describe: '' },
  ];
  const spec = {
    learningRate: { type: 'number', describe: '', group: 'b' },
    imageSize: { type: 'number', describe: '', group: 'a' },
  } as const;
  assert.deepEqual(specGroups(spec, groups, { a: ['config'] }), [
    { title: 'First:', flags: ['config', 'image-size'] },
    { title: 'Second:', flags: ['learning-rate'] },
  ]);
  assert.throws(() => specGroups({ x: { type: 'number', describe: '' } }, groups), /"x" names no known group/);
});

test('every verb checks its whole-number flags the same way (exit 2, the same message)', async () => {
  const cases: [string[], string][] = [
    [['eval', '--model', 'm', '--data', 'd', '--beam', '0'], '--beam must be a whole number ≥ 1, got 0'],
    [['serve', '--model', 'm', '--queue', '-1'], '--queue must be a whole number ≥ 0, got -1'],
    [
      ['serve', '--model', 'm', '--queue', 'redis://127.0.0.1:1/0', '--max-waiting', '0'],
      '--max-waiting must be a whole number ≥ 1, got 0',
    ],
    [['serve', '--model', 'm', '--max-waiting', '4'], '--max-waiting bounds a job queue: it needs --queue redis://'],
    [['data', 'shapes', '--out', 'nowhere', '--size', '4'], '--size must be a whole number ≥ 8, got 4'],
    [['caption', 'x.png', '--model', 'm', '--batch-size', '1.5'], '--batch-size must be a whole number ≥ 1, got 1.5'],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args[0]}: ${r.stderr}`);
    assert.ok(r.stderr.includes(`error: ${message}`), `${args[0]}: ${r.stderr}`);
  }
});

test('specMarkdown: every training setting once, in a table under its group, as --help groups them', () => {
  const md = specMarkdown(TRAIN_SPEC, TRAIN_DEFAULTS, TRAIN_GROUPS);
  const sections = md.split(/^### /m).slice(1);
  assert.deepEqual(
    sections.map((s) => s.split('\n')[0]),
    TRAIN_GROUPS.map((g) => g.title),
  );
  for (const [key, field] of Object.entries(TRAIN_SPEC)) {
    const row = new RegExp(`^\\| \`--${kebab(key)}\` \\| `, 'm');
    const where = sections.filter((s) => row.test(s)).map((s) => s.split('\n')[0]);
    assert.deepEqual(where, [TRAIN_GROUPS.find((g) => g.key === field.group)!.title], key);
  }
  assert.match(md, /^\| `--cell` \| `"lstm"` \| recurrent cell: .* \(lstm, gru, rnn, irnn\) \|$/m);
  const piped = specMarkdown({ a: { type: 'string', describe: 'x|y', group: 'g' } }, { a: '' }, [
    { key: 'g', title: 'G', describe: 'a group' },
  ]);
  assert.equal(
    piped,
    '### G\n\nA group.\n\n| option | default | what it does |\n| --- | --- | --- |\n| `--a` | `""` | x\\|y |\n',
  );
});
