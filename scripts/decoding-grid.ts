/**
 * Scores a model under a grid of decoding settings (beam width × anti-LM λ) on splits used for
 * choosing, never on the splits a figure is reported on (docs/experiments/default-model-v2.md):
 * each cell is one `captioner eval --json` run, its exact match per split collected into a
 * table (Markdown on stdout) and into `--out` as JSON. Cells already in `--out` are not run again,
 * so a stopped grid goes on where it stopped.
 *
 *   node --import tsx scripts/decoding-grid.ts --model train/shapes-s1 --data data/shapes-v2 \
 *       --splits val,selection --beams 1,3,8 --anti-lm 0,0.12 --out train/shapes-s1/decoding-grid.json
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readJsonIfExists, writeFileAtomic } from '../model/io/fsutil.ts';
import { runCli } from '../test/helpers/cli.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    data: { type: 'string' },
    splits: { type: 'string', default: 'val,selection' },
    beams: { type: 'string', default: '1,3,8' },
    'anti-lm': { type: 'string', default: '0,0.12' },
    plausibility: { type: 'string', default: '0.15' },
    limit: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help || !values.model || !values.data || !values.out) {
  process.stderr.write(
    'usage: node --import tsx scripts/decoding-grid.ts --model DIR --data DIR --out FILE.json\n' +
      '         [--splits val,selection] [--beams 1,3,8] [--anti-lm 0,0.12] [--plausibility 0.15] [--limit N]\n',
  );
  process.exit(values.help ? 0 : 2);
}

const numbers = (flag: string, text: string): number[] =>
  text.split(',').map((t) => {
    const n = Number(t);
    if (t.trim() === '' || !Number.isFinite(n)) {
      process.stderr.write(`--${flag}: "${t}" is not a number\n`);
      process.exit(2);
    }
    return n;
  });
const beams = numbers('beams', values.beams);
const lambdas = numbers('anti-lm', values['anti-lm']);
const plausibility = numbers('plausibility', values.plausibility)[0]!;
const splits = values.splits.split(',').filter(Boolean);

/** One cell: a decoding setting and the exact match (and count) of every split eval scored. */
interface Cell {
  beam: number;
  antiLm: number;
  plausibility: number;
  split: string;
  exact: Record<string, { rate: number; images: number; byObjects: unknown }>;
  seconds: number;
}
interface EvalJson {
  splits: { split: string; images: number; semantic: { exactRate: number; byObjects?: unknown } | null }[];
}

const cells: Cell[] = (await readJsonIfExists<{ cells: Cell[] }>(values.out))?.cells ?? [];
const done = (beam: number, antiLm: number, split: string) =>
  cells.some((c) => c.beam === beam && c.antiLm === antiLm && c.plausibility === plausibility && c.split === split);

async function runEval(args: string[]): Promise<EvalJson> {
  const r = await runCli(['eval', ...args]);
  if (r.code !== 0) throw new Error(`captioner eval ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as EvalJson;
}

const percent = (r: number | undefined) => (r === undefined || Number.isNaN(r) ? '–' : `${(r * 100).toFixed(1)} %`);
const total = beams.length * lambdas.length * splits.length;
let k = 0;
for (const beam of beams) {
  for (const antiLm of lambdas) {
    for (const split of splits) {
      k += 1;
      if (done(beam, antiLm, split)) continue;
      process.stderr.write(`[${k}/${total}] beam ${beam}, anti-LM ${antiLm}, ${split}\n`);
      const scratch = await mkdtemp(join(tmpdir(), 'captioner-grid-'));
      const started = Date.now();
      try {
        const result = await runEval([
          ...['--model', values.model, '--data', values.data, '--split', split, '--json', '--out', scratch],
          ...['--beam', String(beam), '--anti-lm', String(antiLm), '--anti-lm-plausibility', String(plausibility)],
          ...(values.limit ? ['--limit', values.limit] : []),
        ]);
        const exact = Object.fromEntries(
          result.splits.map((s) => [
            s.split,
            { rate: s.semantic?.exactRate ?? NaN, images: s.images, byObjects: s.semantic?.byObjects ?? null },
          ]),
        );
        const seconds = (Date.now() - started) / 1000;
        cells.push({ beam, antiLm, plausibility, split, exact, seconds });
        process.stderr.write(
          `  ${result.splits.map((s) => `${s.split} ${percent(s.semantic?.exactRate)}`).join(', ')} (${seconds.toFixed(0)} s)\n`,
        );
        await writeFileAtomic(values.out, JSON.stringify({ model: values.model, data: values.data, cells }, null, 2));
      } finally {
        await rm(scratch, { recursive: true, force: true });
      }
    }
  }
}

const columns = [...new Set(cells.flatMap((c) => Object.keys(c.exact)))];
process.stdout.write(`| beam | anti-LM λ | ${columns.join(' | ')} |\n|${' --- |'.repeat(columns.length + 2)}\n`);
for (const beam of beams) {
  for (const antiLm of lambdas) {
    const mine = cells.filter((c) => c.beam === beam && c.antiLm === antiLm && c.plausibility === plausibility);
    const rate = (col: string) => mine.find((c) => c.exact[col])?.exact[col]?.rate;
    process.stdout.write(`| ${beam} | ${antiLm} | ${columns.map((col) => percent(rate(col))).join(' | ')} |\n`);
  }
}
