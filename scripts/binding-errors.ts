/**
 * Where a caption's wrong words come from: after `captioner eval`, reads a split's captions back
 * into objects and, for every scene the caption misses but names with as many objects as it
 * has, pairs the caption's objects with the scene's (the pairing that agrees on the most
 * attributes) and counts each wrong attribute (shape, colour, size), and how many of them are
 * another object's of the same scene: "a large red hexagon" for a large red circle beside an
 * orange hexagon is a wrong shape taken from the neighbour. A caption that gets every word of
 * the scene but binds them to the wrong objects is a binding error, not a recognition error:
 * `sameWords` counts those scenes, a figure that, unlike `anotherObjects`, no choice among equally
 * good pairings changes. By number of objects.
 *
 *   node --import tsx scripts/binding-errors.ts EVAL_DIR DATA_DIR [SPLIT]
 *
 * EVAL_DIR is an `eval --out` directory (it holds results-SPLIT.json); DATA_DIR the shapes data
 * set it scored; SPLIT selection (the default), selection-compositional, val, … Prints one JSON
 * line.
 */
import { compareScenes, parseShapesCaption, type SceneObject } from '../data-scripts/shapes/semantics.ts';
import { readScoredCaptions } from './scored-captions.ts';

const [evalDir, dataDir, split = 'selection'] = process.argv.slice(2);
if (!evalDir || !dataDir) {
  process.stderr.write('usage: scripts/binding-errors.ts EVAL_DIR DATA_DIR [SPLIT]\n');
  process.exit(2);
}

const ATTRIBUTES = ['shape', 'colour', 'size'] as const;

/** Every ordering of 0 … n − 1 (scenes of the benchmark have at most a few objects). */
function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  return permutations(n - 1).flatMap((p) =>
    Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]),
  );
}

const agreeing = (a: SceneObject, b: SceneObject) => ATTRIBUTES.filter((k) => a[k] === b[k]).length;
/** The values of one attribute over a scene's objects, as a sorted list: the scene's words, unbound. */
const words = (objects: SceneObject[], k: (typeof ATTRIBUTES)[number]) =>
  objects
    .map((o) => o[k])
    .sort()
    .join(' ');

interface Tally {
  scenes: number;
  missed: number;
  /** Missed scenes whose caption names as many objects as the scene has: the ones paired here. */
  paired: number;
  wrong: Record<(typeof ATTRIBUTES)[number], number>;
  /**
   * Wrong attributes that another object of the same scene has. Among pairings that agree on
   * equally many attributes this count can differ; the first such ordering is taken.
   */
  anotherObjects: Record<(typeof ATTRIBUTES)[number], number>;
  /** Paired scenes with a wrong attribute (the same under every best pairing). */
  wrongObjects: number;
  /**
   * Of those, the ones whose caption says exactly the scene's words, every attribute's values
   * as a multiset, bound to the wrong objects: binding errors by a count no pairing changes.
   */
  sameWords: number;
}
const byObjects: Record<number, Tally> = {};
for (const { caption, truth } of readScoredCaptions(evalDir, dataDir, split)) {
  const n = truth.objects.length;
  const tally = (byObjects[n] ??= {
    scenes: 0,
    missed: 0,
    paired: 0,
    wrong: { shape: 0, colour: 0, size: 0 },
    anotherObjects: { shape: 0, colour: 0, size: 0 },
    wrongObjects: 0,
    sameWords: 0,
  });
  tally.scenes++;
  const said = parseShapesCaption(caption) ?? { objects: [], relations: [] };
  if (compareScenes(said, truth).exact) continue;
  tally.missed++;
  if (said.objects.length !== n || n > 6) continue;
  tally.paired++;
  const score = (p: number[]) => p.reduce((s, q, t) => s + agreeing(said.objects[q]!, truth.objects[t]!), 0);
  const best = permutations(n).reduce((b, p) => (score(p) > score(b) ? p : b));
  if (score(best) === 3 * n) continue; // every object right: the miss is in the relations
  tally.wrongObjects++;
  if (ATTRIBUTES.every((k) => words(said.objects, k) === words(truth.objects, k))) tally.sameWords++;
  best.forEach((q, t) => {
    for (const k of ATTRIBUTES) {
      const value = said.objects[q]![k];
      if (value === truth.objects[t]![k]) continue;
      tally.wrong[k]++;
      if (truth.objects.some((o, u) => u !== t && o[k] === value)) tally.anotherObjects[k]++;
    }
  });
}
console.log(JSON.stringify({ split, byObjects }));
