/**
 * How much of an experiment's per-position accuracy the picture explains: each run's captions of
 * a split scored by position (data-scripts/shapes/semantics.ts `positionsRight`, as `eval` does)
 * against their own scenes, and against every *other* image's scene of the split (the mean over
 * all pairs): what the same captions would score if they had nothing to do with the image. The
 * second is the chance level a position's accuracy must clear before it says the model read the
 * object there from the picture, rather than naming common objects (a large circle in a scene of
 * six is often right by chance).
 *
 *   node --import tsx scripts/blind-positions.ts --experiment lab/cells --data data/shapes-long12k-48
 *
 * Reads OUT/runs/ARM/seed-N/eval/results-SPLIT.json (written by `captioner experiment run`) and the
 * data set's manifest; prints a Markdown table (mean ± sd over seeds, per arm and position) and,
 * with --json FILE, writes the figures; and how many objects a caption names, against the scenes.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readManifest, splitImages } from '../model/data/dataset.ts';
import { summarise, type Summary } from '../experiment/figures.ts';
import { writeFileAtomic } from '../model/io/fsutil.ts';
import { parseShapesCaption, tallyPositions, type Scene } from '../data-scripts/shapes/semantics.ts';

const { values } = parseArgs({
  options: {
    experiment: { type: 'string' },
    data: { type: 'string' },
    split: { type: 'string', default: 'test' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help || !values.experiment || !values.data) {
  process.stderr.write(
    'usage: node --import tsx scripts/blind-positions.ts --experiment DIR --data DIR [--split test] [--json FILE]\n',
  );
  process.exit(values.help ? 0 : 2);
}

/** Per position k: the share of captions (of scenes with at least k + 1 objects) naming object k right. */
function positionRates(pairs: Iterable<[Scene | null, Scene]>): number[] {
  const tally: { captions: number; right: number }[] = [];
  for (const [named, truth] of pairs) tallyPositions(tally, named, truth);
  return tally.map((p) => p.right / p.captions);
}

function* ownPairs(named: (Scene | null)[], scenes: Scene[]): Generator<[Scene | null, Scene]> {
  for (let i = 0; i < scenes.length; i++) yield [named[i]!, scenes[i]!];
}

function* otherPairs(named: (Scene | null)[], scenes: Scene[]): Generator<[Scene | null, Scene]> {
  for (let i = 0; i < scenes.length; i++)
    for (let j = 0; j < scenes.length; j++) if (i !== j) yield [named[i]!, scenes[j]!];
}

const split = values.split;
const manifest = await readManifest(values.data);
const sceneOf = new Map(splitImages(manifest, split).map((img) => [img.id, img.scene as Scene]));
const runsDir = join(values.experiment, 'runs');
const figures: { arm: string; seed: string; own: number[]; blind: number[]; named: number }[] = [];
for (const arm of (await readdir(runsDir)).sort()) {
  for (const seed of (await readdir(join(runsDir, arm))).sort()) {
    const file = join(runsDir, arm, seed, 'eval', `results-${split}.json`);
    const results = JSON.parse(await readFile(file, 'utf8')) as { image_id: string; caption: string }[];
    const scenes = results.map((r) => {
      const scene = sceneOf.get(r.image_id);
      if (!scene) throw new Error(`${file}: image ${r.image_id} is not in split "${split}" of ${values.data}`);
      return scene;
    });
    const named = results.map((r) => parseShapesCaption(r.caption));
    figures.push({
      arm,
      seed,
      own: positionRates(ownPairs(named, scenes)),
      blind: positionRates(otherPairs(named, scenes)),
      named: named.reduce((n, scene) => n + (scene?.objects.length ?? 0), 0) / named.length,
    });
  }
}

const pct = (s: Summary | null) => (s ? `${(100 * s.mean).toFixed(1)} ± ${(100 * (s.sd ?? 0)).toFixed(1)}` : '–');
const width = Math.max(...figures.map((f) => f.own.length));
const lines = [
  `| arm | captions scored | ${Array.from({ length: width }, (_, k) => `object ${k + 1}`).join(' | ')} |`,
  `| --- | --- | ${Array.from({ length: width }, () => '---').join(' | ')} |`,
];
const arms = [...new Set(figures.map((f) => f.arm))];
const summary = arms.map((arm) => {
  const runs = figures.filter((f) => f.arm === arm);
  const at = (key: 'own' | 'blind') =>
    Array.from({ length: width }, (_, k) => summarise(runs.map((r) => r[key][k] ?? null)));
  return { arm, seeds: runs.length, own: at('own'), blind: at('blind'), named: summarise(runs.map((r) => r.named)) };
});
for (const s of summary) {
  lines.push(`| ${s.arm} | against its image | ${s.own.map(pct).join(' | ')} |`);
  lines.push(`| ${s.arm} | against the other images | ${s.blind.map(pct).join(' | ')} |`);
}
const inScenes = [...sceneOf.values()].reduce((n, scene) => n + scene.objects.length, 0) / sceneOf.size;
const namedLine = summary
  .map((s) => `${s.arm} ${s.named!.mean.toFixed(2)} ± ${(s.named!.sd ?? 0).toFixed(2)}`)
  .join(', ');
process.stdout.write(
  `${lines.join('\n')}\n\n(% named right, mean ± sd over seeds; split "${split}")\n` +
    `objects named per caption: ${namedLine}; in the scenes: ${inScenes.toFixed(2)}\n`,
);
if (values.json) await writeFileAtomic(values.json, `${JSON.stringify({ split, summary, runs: figures }, null, 2)}\n`);
