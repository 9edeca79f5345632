/**
 * The project's one CSV reader (RFC 4180), shared by the caption tables users import
 * (data-scripts/import/table.ts) and the batch CLI's record files (batch/records.ts).
 *
 * A field may be quoted; a quoted field holds commas, line breaks and doubled quotes (`""`). A
 * quote that does not open a field is an ordinary character. Records end at LF, CRLF or a lone
 * CR; blank lines are skipped; a leading byte-order mark is ignored. The last record is returned
 * apart, as `tail`, when no line end follows it: a file written record by record and cut short
 * ends that way (and so does a hand-made file whose last line has no line end; the caller
 * decides which it is). A CR the text ends on may be the first half of a CRLF, so it does not
 * end the record.
 */

/** A record that no line end follows: its fields so far, where it starts, and whether a quote is left open. */
export interface CsvTail {
  fields: string[];
  line: number;
  inQuotes: boolean;
}

export interface ParsedCsv {
  /** The complete records (each followed by a line end), in order. */
  rows: string[][];
  /** The line (1-based) each of `rows` starts on, for messages. */
  lines: number[];
  /** Whether the text ends in a record with no line end after it (that record is `tail`, not in `rows`). */
  partial: boolean;
  tail: CsvTail | null;
}

/** Splits CSV text into records of fields, as the module comment describes. */
export function parseCsv(text: string): ParsedCsv {
  const rows: string[][] = [];
  const lines: number[] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let started = false; // the current record has a character
  let line = 1;
  let rowLine = 1;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // a byte-order mark
  for (; i < text.length; i++) {
    const c = text[i]!;
    if (!started) rowLine = line;
    started = true;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else {
        if (c === '\n' || (c === '\r' && text[i + 1] !== '\n')) line++;
        field += c;
      }
    } else if (c === '"' && field === '') quoted = true;
    else if (c === ',') {
      fields.push(field);
      field = '';
    } else if (c === '\n' || (c === '\r' && i + 1 < text.length)) {
      if (c === '\r' && text[i + 1] === '\n') i++;
      fields.push(field);
      if (!(fields.length === 1 && fields[0] === '')) {
        rows.push(fields);
        lines.push(rowLine);
      }
      fields = [];
      field = '';
      started = false;
      line++;
    } else if (c !== '\r') field += c; // a CR the text ends on: a record cut short in its CRLF
  }
  if (!started) return { rows, lines, partial: false, tail: null };
  fields.push(field);
  return { rows, lines, partial: true, tail: { fields, line: rowLine, inQuotes: quoted } };
}
