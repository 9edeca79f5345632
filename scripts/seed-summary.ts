/**
 * The figures of one recipe trained with several seeds, side by side: reads the metrics.json of
 * each `captioner eval --out` directory given (one per seed, same data and decoding) and prints,
 * per split, every run's figures and their mean ± sample sd, exact match by number of shapes
 * included (docs/experiments/default-model-v2.md, Protocol 3 and 4).
 *
 *   node --import tsx scripts/seed-summary.ts [--median-by SPLIT,SPLIT] [--json FILE] EVAL_DIR...
 *
 * --median-by names the splits whose exact match ranks the runs (the first decides, the next
 * breaks its ties), and the run in the middle is printed as the median: with an even number of
 * runs, the lower of the two middle ones. A run without one of those splits is an error naming
 * its directory, as is a directory without metrics.json.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { summarise, type Summary } from '../experiment/figures.ts';
import { writeFileAtomic } from '../model/io/fsutil.ts';

const { values, positionals: dirs } = parseArgs({
  allowPositionals: true,
  options: {
    'median-by': { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help || !dirs.length) {
  process.stderr.write(
    'usage: node --import tsx scripts/seed-summary.ts [--median-by SPLIT,SPLIT] [--json FILE] EVAL_DIR...\n',
  );
  process.exit(values.help ? 0 : 2);
}

/** What this script reads of an eval run's metrics.json, per split. */
interface SplitMetrics {
  images: number;
  scores: Record<string, number>;
  semantic: {
    exactRate: number;
    f1: number;
    byObjects?: { objects: number; captions: number; exact: number }[];
  } | null;
}

function fail(message: string): never {
  process.stderr.write(`seed-summary: ${message}\n`);
  process.exit(2);
}

const runs = dirs.map((dir) => {
  const file = join(dir, 'metrics.json');
  let metrics: { decoding?: string; splits?: Record<string, SplitMetrics> };
  try {
    metrics = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    fail(`${file}: ${(err as Error).message}`);
  }
  if (!metrics.splits || typeof metrics.splits !== 'object')
    fail(`${file}: no "splits" (is it a captioner eval metrics.json?)`);
  return { dir, decoding: metrics.decoding ?? '', splits: metrics.splits };
});

/** The figures of one split of one run, as rates and scores (null where the run lacks them). */
function figures(s: SplitMetrics | undefined) {
  const byObjects = new Map((s?.semantic?.byObjects ?? []).map((g) => [g.objects, g]));
  return {
    images: s?.images ?? null,
    'BLEU-4': s?.scores['BLEU-4'] ?? null,
    'CIDEr-D': s?.scores['CIDEr-D'] ?? null,
    exact: s?.semantic?.exactRate ?? null,
    'attribute F1': s?.semantic?.f1 ?? null,
    ...Object.fromEntries(
      [1, 2, 3].map((n) => {
        const g = byObjects.get(n);
        return [`exact, ${n} shape${n > 1 ? 's' : ''}`, g && g.captions ? g.exact / g.captions : null];
      }),
    ),
  } as Record<string, number | null>;
}

const splitNames = [...new Set(runs.flatMap((r) => Object.keys(r.splits)))];
const decodings = [...new Set(runs.map((r) => r.decoding))];
const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
/** A figure as the tables show it: rates in per cent, F1 and the scores to three places, counts as they are. */
function show(column: string, x: number): string {
  if (column === 'images') return String(x);
  return column.startsWith('exact') ? pct(x) : x.toFixed(3);
}
/** Mean ± sd (the sd in the figure's unit: points for rates); image counts as their range. */
function showSummary(column: string, s: Summary | null, xs: (number | null)[]): string {
  if (!s) return '–';
  if (column === 'images') {
    const counts = xs.filter((x): x is number => x !== null);
    const [lo, hi] = [Math.min(...counts), Math.max(...counts)];
    return lo === hi ? String(lo) : `${lo}–${hi}`;
  }
  if (s.sd === null) return show(column, s.mean);
  return `${show(column, s.mean)} ± ${column.startsWith('exact') ? (100 * s.sd).toFixed(1) : s.sd.toFixed(3)}`;
}

const summary: Record<
  string,
  { runs: Record<string, Record<string, number | null>>; mean: Record<string, Summary | null> }
> = {};
const lines: string[] = [];
if (decodings.length > 1) lines.push(`**The runs were decoded differently**: ${decodings.join(' / ')}`, '');
else lines.push(`Decoding: ${decodings[0] || 'not recorded'}`, '');
for (const split of splitNames) {
  const perRun = Object.fromEntries(runs.map((r) => [r.dir, figures(r.splits[split])]));
  const columns = Object.keys(figures(undefined));
  const column = (c: string) => runs.map((r) => perRun[r.dir]![c]!);
  const mean = Object.fromEntries(columns.map((c) => [c, summarise(column(c))]));
  summary[split] = { runs: perRun, mean };
  lines.push(`### ${split}`, '', `| run | ${columns.join(' | ')} |`, `| --- |${' --- |'.repeat(columns.length)}`);
  for (const r of runs) {
    lines.push(
      `| ${r.dir} | ${columns.map((c) => (perRun[r.dir]![c] === null ? '–' : show(c, perRun[r.dir]![c]!))).join(' | ')} |`,
    );
  }
  lines.push(
    `| mean ± sd (${runs.length} runs) | ${columns.map((c) => showSummary(c, mean[c]!, column(c))).join(' | ')} |`,
    '',
  );
}

let median: string | null = null;
if (values['median-by']) {
  const keys = values['median-by'].split(',').filter(Boolean);
  const ranked = runs
    .map((r) => ({
      dir: r.dir,
      key: keys.map((k) => {
        const rate = r.splits[k]?.semantic?.exactRate;
        if (rate === undefined) fail(`${join(r.dir, 'metrics.json')}: no exact match on split "${k}" (--median-by)`);
        return rate;
      }),
    }))
    .sort((a, b) => {
      for (let i = 0; i < keys.length; i++) if (a.key[i] !== b.key[i]) return a.key[i]! - b.key[i]!;
      return 0;
    });
  median = ranked[Math.floor((ranked.length - 1) / 2)]!.dir;
  lines.push(
    `Ranked by exact match on ${keys.join(', then ')}: ${ranked.map((r) => `${r.dir} (${r.key.map(pct).join(' / ')})`).join(' < ')}`,
    `median: ${median}`,
  );
}

process.stdout.write(lines.join('\n') + '\n');
if (values.json)
  await writeFileAtomic(values.json, JSON.stringify({ decodings, splits: summary, median }, null, 2) + '\n');
