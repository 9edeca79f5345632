import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  RecordFileError,
  columns,
  csvField,
  formatRecord,
  headerText,
  parseCsv,
  parseRecords,
  tsvField,
  type CaptionRecord,
  type RecordFormat,
} from '../../batch/records.ts';

const RECORDS: CaptionRecord[] = [
  {
    path: 'a.jpg',
    caption: 'a dog, "running"',
    logProb: -1.25,
    nbest: [
      { caption: 'a dog, "running"', logProb: -1.25 },
      { caption: 'a cat', logProb: -2.5 },
    ],
  },
  {
    path: 'dir with space/b\tc.png',
    caption: 'two\nlines',
    logProb: -0.5,
    nbest: [{ caption: 'two\nlines', logProb: -0.5 }],
  },
  { path: 'bad,name".jpg', error: 'cannot decode image (truncated)' },
];

function fileText(format: RecordFormat, nbest: number, records: CaptionRecord[]): string {
  return headerText(format, nbest) + records.map((r) => formatRecord(format, r, nbest)).join('');
}

test('records survive a write and a read in every format, with quoting and escapes', () => {
  for (const format of ['jsonl', 'csv', 'tsv'] as const) {
    const text = fileText(format, 2, RECORDS);
    const { records, droppedPartial } = parseRecords(text, format, 2, 'out');
    assert.equal(droppedPartial, false, format);
    assert.deepEqual(records, RECORDS, format);
    // One record per line in TSV and JSON Lines, whatever the fields hold.
    if (format !== 'csv') assert.equal(text.split('\n').length - 1, RECORDS.length + (format === 'tsv' ? 1 : 0));
  }
});

test('a record cut short by a kill is dropped, in every format and at every byte', () => {
  for (const format of ['jsonl', 'csv', 'tsv'] as const) {
    const whole = fileText(format, 2, RECORDS.slice(0, 2));
    const headerLength = headerText(format, 2).length;
    const firstEnd = headerLength + formatRecord(format, RECORDS[0]!, 2).length;
    for (let cut = headerLength + 1; cut < whole.length; cut++) {
      const { records, droppedPartial } = parseRecords(whole.slice(0, cut), format, 2, 'out');
      if (cut === firstEnd) {
        assert.equal(droppedPartial, false);
        assert.deepEqual(records, RECORDS.slice(0, 1));
      } else {
        assert.equal(droppedPartial, true, `${format} cut at ${cut}`);
        assert.deepEqual(records, cut < firstEnd ? [] : RECORDS.slice(0, 1), `${format} cut at ${cut}`);
      }
    }
  }
});

test('a file this run did not write is refused, naming the file', () => {
  assert.throws(
    () => parseRecords('hello\n', 'jsonl', 1, 'o.jsonl'),
    (e: Error) => e instanceof RecordFileError && /o\.jsonl:1/.test(e.message),
  );
  assert.throws(() => parseRecords('{"x":1}\n', 'jsonl', 1, 'o.jsonl'), RecordFileError);
  assert.throws(
    () => parseRecords(fileText('csv', 1, []), 'csv', 3, 'o.csv'),
    (e: Error) => /columns/.test(e.message),
  );
  assert.throws(() => parseRecords(headerText('tsv', 1) + 'a.jpg\tx\tnot-a-number\t\n', 'tsv', 1, 'o.tsv'), /log_prob/);
});

test('CSV and TSV fields escape exactly what they must', () => {
  assert.equal(csvField('plain words'), 'plain words');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.deepEqual(parseCsv('a,"b,""c""\nd",e\r\nf,g\n'), {
    rows: [
      ['a', 'b,"c"\nd', 'e'],
      ['f', 'g'],
    ],
    partial: false,
  });
  assert.equal(tsvField('a\tb\\n\nc'), 'a\\tb\\\\n\\nc');
  assert.deepEqual(columns(3), [
    'path',
    'caption',
    'log_prob',
    'caption_2',
    'log_prob_2',
    'caption_3',
    'log_prob_3',
    'error',
  ]);
});

test('record files keep the real path where it differs: JSON Lines as realPath, CSV/TSV in a last column', () => {
  const withReal: CaptionRecord[] = [
    { path: 'pics/a.jpg', realPath: '/data/pics/a.jpg', caption: 'a cat', logProb: -1 },
    { path: '/data/pics/b.jpg', caption: 'a dog', logProb: -2 },
    { path: 'c.jpg', realPath: '/data/c.jpg', error: 'cannot decode image (truncated)' },
  ];
  for (const format of ['jsonl', 'csv', 'tsv'] as const) {
    const text = headerText(format, 1, true) + withReal.map((r) => formatRecord(format, r, 1, true)).join('');
    const read = parseRecords(text, format, 1, 'out');
    assert.deepEqual(read.records, withReal, format);
    assert.equal(read.realPathColumn, true);
  }
  assert.deepEqual(columns(1, true), ['path', 'caption', 'log_prob', 'error', 'real_path']);
  // A file written before the column existed is read as it is, and says so.
  const legacy = headerText('csv', 1) + formatRecord('csv', { path: 'x.jpg', caption: 'x', logProb: -1 }, 1);
  const old = parseRecords(legacy, 'csv', 1, 'old.csv');
  assert.equal(old.realPathColumn, false);
  assert.deepEqual(old.records, [{ path: 'x.jpg', caption: 'x', logProb: -1 }]);
  assert.throws(
    () => parseRecords('{"path":"a","realPath":3,"caption":"x","logProb":-1}\n', 'jsonl', 1, 'o.jsonl'),
    /o\.jsonl:1: "realPath" must be a non-empty string/,
  );
});
