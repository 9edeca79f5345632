/** The one CSV reader: RFC 4180 fields, line ends of every kind, and a last record cut short kept apart. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCsv } from '../../../model/util/csv.ts';

test('quoted fields hold commas, doubled quotes and line breaks; records end at LF, CRLF or a lone CR', () => {
  const text = '\uFEFFa,"b,""c""\r\nd",e\r\nf,g\rh,\n\n"",i\n';
  assert.deepEqual(parseCsv(text), {
    rows: [
      ['a', 'b,"c"\r\nd', 'e'],
      ['f', 'g'],
      ['h', ''],
      ['', 'i'],
    ],
    lines: [1, 3, 4, 6],
    partial: false,
    tail: null,
  });
});

test('a quote inside an unquoted field is an ordinary character', () => {
  assert.deepEqual(parseCsv('say "hi",x\n').rows, [['say "hi"', 'x']]);
});

test('a last record with no line end is the tail: cut short in a field, in quotes, or between CR and LF', () => {
  assert.deepEqual(parseCsv('a,b\nc,d').tail, { fields: ['c', 'd'], line: 2, inQuotes: false });
  assert.deepEqual(parseCsv('a,b\n"c\nd').tail, { fields: ['c\nd'], line: 2, inQuotes: true });
  const cut = parseCsv('a,b\r\nc,d\r');
  assert.deepEqual(cut.rows, [['a', 'b']]);
  assert.deepEqual(cut.tail, { fields: ['c', 'd'], line: 2, inQuotes: false });
  assert.equal(cut.partial, true);
  assert.deepEqual(parseCsv(''), { rows: [], lines: [], partial: false, tail: null });
});
