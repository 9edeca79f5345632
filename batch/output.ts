/**
 * Where a batch run's records go: a stream (stdout), or a record file that makes the run
 * resumable. Opening a record file reads what an earlier run wrote there: images it captioned
 * are done (matched by real path, so a rerun from another directory or through another alias
 * finds them), its failures are dropped to be retried, and a partial last record (a kill
 * mid-write) is dropped to be redone. Records are then appended whole, each batch flushed to
 * disk before the next is counted as done.
 */
import { open, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ifExists, writeFileAtomic } from '../model/io/fsutil.ts';
import { realPathOrNull } from './inputs.ts';
import {
  formatRecord,
  headerText,
  isCaptioned,
  parseRecords,
  type CaptionRecord,
  type RecordFormat,
} from './records.ts';

/** Takes a batch's records (each with its image's real path, where known) and writes them whole. */
export interface RecordSink {
  write(records: readonly CaptionRecord[]): Promise<void>;
  close(): Promise<void>;
}

/** What a record file held when a run resumed it. */
export interface Resumed {
  /** Images captioned there, not to be done again. */
  captioned: number;
  /** Failures recorded there, dropped to be retried. */
  retried: number;
  droppedPartial: boolean;
}

export interface RecordOutput {
  sink: RecordSink;
  /** Real paths of the images already captioned (empty for a stream or a new file). */
  done: ReadonlySet<string>;
  /** Set when an existing file was resumed. */
  resumed: Resumed | null;
}

/**
 * Records on a stream (stdout): the header now, then each batch; no real paths (nothing resumes
 * from a stream). `familiarity`: the model is calibrated, so CSV and TSV have its columns.
 */
export async function streamOutput(
  stream: NodeJS.WritableStream,
  format: RecordFormat,
  nbest: number,
  familiarity = false,
): Promise<RecordOutput> {
  const write = (text: string) =>
    new Promise<void>((done, fail) => stream.write(text, (err) => (err ? fail(err) : done())));
  await write(headerText(format, nbest, false, familiarity));
  return {
    sink: {
      write: (records) =>
        write(records.map((r) => formatRecord(format, withoutRealPath(r), nbest, false, familiarity)).join('')),
      close: async () => {},
    },
    done: new Set(),
    resumed: null,
  };
}

function withoutRealPath(r: CaptionRecord): CaptionRecord {
  const { realPath: _, ...rest } = r;
  return rest;
}

/** A record as a file keeps it: its real path only where that differs from the path as given. */
function forFile(r: CaptionRecord): CaptionRecord {
  return r.realPath === undefined || r.realPath === r.path ? withoutRealPath(r) : r;
}

/** The real path a record names: the one it keeps, else its path's (relative to the current directory). */
async function recordRealPath(r: CaptionRecord): Promise<string> {
  return r.realPath ?? (await realPathOrNull(r.path)) ?? resolve(r.path);
}

/**
 * Opens (creating, or resuming) the record file `out` in `format` with `nbest` alternatives; a
 * file that is not such a record file is a RecordFileError and is left untouched. `familiarity`:
 * the model is calibrated, so a new CSV or TSV file gets its columns (a file resumed keeps its own).
 */
export async function openRecordFile(
  out: string,
  format: RecordFormat,
  nbest: number,
  familiarity = false,
): Promise<RecordOutput> {
  const text = await ifExists(readFile(out, 'utf8'));
  const existing = parseRecords(text ?? '', format, nbest, out);
  const realPaths = existing.realPathColumn;
  const familiarityColumns = existing.familiarityColumns ?? familiarity;
  const kept = existing.records.filter(isCaptioned);
  const rewrite =
    text === null ||
    existing.droppedPartial ||
    kept.length !== existing.records.length ||
    (text === '' && format !== 'jsonl');
  if (rewrite) {
    await writeFileAtomic(
      out,
      headerText(format, nbest, realPaths, familiarityColumns) +
        kept.map((r) => formatRecord(format, r, nbest, realPaths, familiarityColumns)).join(''),
    );
  }
  const done = new Set<string>();
  for (const r of kept) done.add(await recordRealPath(r));
  const handle = await open(out, 'a');
  return {
    sink: {
      async write(records) {
        await handle.write(
          records.map((r) => formatRecord(format, forFile(r), nbest, realPaths, familiarityColumns)).join(''),
        );
        await handle.sync();
      },
      close: () => handle.close(),
    },
    done,
    resumed:
      text === null
        ? null
        : {
            captioned: kept.length,
            retried: existing.records.length - kept.length,
            droppedPartial: existing.droppedPartial,
          },
  };
}
