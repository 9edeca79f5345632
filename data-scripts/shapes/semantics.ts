/**
 * The meaning of a shapes caption: `parseShapesCaption` reads any caption the grammar
 * (grammar.ts) writes back into objects, attributes and relations, and `compareScenes` checks
 * such a reading against a scene's ground truth, so that evaluation can score what a caption
 * says rather than only its n-grams.
 *
 * Scoring (our definition, for this data set): a scene is a set of facts — each object's shape,
 * colour and size, and each declared relation. Predicted objects are matched one-to-one to true
 * objects so as to agree on the most attributes; then
 *   tp = attributes of matched objects that agree + true relations stated correctly,
 *   fp = attributes that disagree + every attribute of an extra object + relations stated wrongly,
 *   fn = attributes that disagree + every attribute of a missed object + true relations not stated.
 * A caption is exact when fp = fn = 0; attribute F1 = 2tp / (2tp + fp + fn) (van Rijsbergen's
 * F-measure with β = 1).
 */
import { ptbTokenize } from '../../model/text/tokenize.ts';
import {
  COLOURS,
  SHAPES,
  type Colour,
  type Relation,
  type Scene,
  type SceneObject,
  type SceneRelation,
  type Shape,
  type Size,
} from './scene.ts';

export type { Scene, SceneObject, SceneRelation } from './scene.ts';

/** Words for sizes; "medium" objects have no size word. Shared with the grammar. */
export const SIZE_WORDS: Readonly<Record<'small' | 'large', readonly string[]>> = {
  small: ['small', 'little', 'tiny'],
  large: ['large', 'big'],
};

/** Phrases for each relation, as word lists. Shared with the grammar. */
export const RELATION_PHRASES: Readonly<Record<Relation, readonly string[]>> = {
  'left of': ['left of', 'to the left of', 'on the left of'],
  'right of': ['right of', 'to the right of', 'on the right of'],
  above: ['above', 'over'],
  below: ['below', 'under', 'beneath'],
  'next to': ['next to', 'beside'],
};

/** Openings, with the number of objects they promise (0: any). Shared with the grammar. */
export const PREFIXES: readonly { words: string; count: number }[] = [
  { words: 'there are two shapes', count: 2 },
  { words: 'there are three shapes', count: 3 },
  { words: 'two shapes', count: 2 },
  { words: 'three shapes', count: 3 },
  // The long-caption scenes of `--max-shapes` (data-scripts/shapes/generate.ts).
  ...(['four', 'five', 'six', 'seven', 'eight'] as const).flatMap((number, i) => [
    { words: `there are ${number} shapes`, count: i + 4 },
    { words: `${number} shapes`, count: i + 4 },
  ]),
  { words: 'there is', count: 0 },
  { words: 'an image of', count: 0 },
  { words: 'a picture of', count: 0 },
  { words: 'the picture shows', count: 0 },
  { words: 'the image shows', count: 0 },
];

export const SUFFIXES: readonly string[] = ['in the picture', 'in the image'];

const DETERMINERS = new Set(['a', 'an', 'one']);
const sizeOfWord = new Map<string, Size>([
  ...SIZE_WORDS.small.map((w) => [w, 'small'] as const),
  ...SIZE_WORDS.large.map((w) => [w, 'large'] as const),
]);
const relationPhrases = Object.entries(RELATION_PHRASES)
  .flatMap(([rel, phrases]) => phrases.map((p) => ({ relation: rel as Relation, words: p.split(' ') })))
  .sort((a, b) => b.words.length - a.words.length); // longest first: "to the left of" before "left of"

function startsWith(tokens: readonly string[], at: number, words: readonly string[]): boolean {
  return words.every((w, k) => tokens[at + k] === w);
}

/**
 * Reads a caption of the shapes grammar into a scene (objects in the order the caption names
 * them, relations between them as stated, no positions). Case and punctuation do not matter
 * (the caption is PTB-tokenised first, as for training). Returns null for anything the grammar
 * cannot produce: unknown words, a missing colour or shape, a count ("two shapes") that does
 * not match the objects named.
 */
export function parseShapesCaption(caption: string): Scene | null {
  const tokens = ptbTokenize(caption);
  let end = tokens.length;
  const suffix = SUFFIXES.map((s) => s.split(' ')).find((s) => s.length < end && startsWith(tokens, end - s.length, s));
  if (suffix) end -= suffix.length;
  let at = 0;
  let promised = 0;
  const prefix = PREFIXES.map((p) => ({ words: p.words.split(' '), count: p.count })).find((p) =>
    startsWith(tokens, 0, p.words),
  );
  if (prefix) {
    at = prefix.words.length;
    promised = prefix.count;
  }

  const objects: SceneObject[] = [];
  const relations: SceneRelation[] = [];
  const readObject = (): SceneObject | null => {
    if (!DETERMINERS.has(tokens[at] ?? '')) return null;
    at++;
    let size: Size = 'medium';
    const sizeWord = sizeOfWord.get(tokens[at] ?? '');
    if (sizeWord) {
      size = sizeWord;
      at++;
    }
    const colour = tokens[at];
    const shape = tokens[at + 1];
    if (!(COLOURS as readonly string[]).includes(colour ?? '') || !(SHAPES as readonly string[]).includes(shape ?? ''))
      return null;
    at += 2;
    return { shape: shape as Shape, colour: colour as Colour, size };
  };

  const first = readObject();
  if (!first) return null;
  objects.push(first);
  while (at < end) {
    if (tokens[at] === 'and') {
      at++;
    } else {
      if (tokens[at] === 'is') at++;
      const phrase = relationPhrases.find((p) => startsWith(tokens, at, p.words));
      if (phrase) {
        at += phrase.words.length;
        relations.push({ subject: objects.length - 1, relation: phrase.relation, object: objects.length });
      } else if (!DETERMINERS.has(tokens[at] ?? '')) {
        return null; // an object list may run without "and" only where commas stood
      }
    }
    const next = readObject();
    if (!next) return null;
    objects.push(next);
  }
  if (at !== end) return null;
  if (promised && objects.length !== promised) return null;
  return { objects, relations };
}

/** A relation as ordered or unordered placement on one axis: "a before b" along x or y. */
interface Placement {
  a: number;
  b: number;
  axis: 'x' | 'y';
  ordered: boolean;
}

function placement(r: SceneRelation): Placement {
  switch (r.relation) {
    case 'left of':
      return { a: r.subject, b: r.object, axis: 'x', ordered: true };
    case 'right of':
      return { a: r.object, b: r.subject, axis: 'x', ordered: true };
    case 'above':
      return { a: r.subject, b: r.object, axis: 'y', ordered: true };
    case 'below':
      return { a: r.object, b: r.subject, axis: 'y', ordered: true };
    case 'next to':
      return { a: r.subject, b: r.object, axis: 'x', ordered: false };
  }
}

/**
 * Whether a stated placement (indices already in truth numbering) agrees with a true one.
 * "next to" is true of any side-by-side pair; "left of" is true of a pair declared "next to"
 * when the truth's x positions say so.
 */
function agrees(stated: Placement, truth: Placement, objects: readonly SceneObject[]): boolean {
  if (stated.axis !== truth.axis) return false;
  const samePair = (stated.a === truth.a && stated.b === truth.b) || (stated.a === truth.b && stated.b === truth.a);
  if (!samePair) return false;
  if (!stated.ordered) return true;
  if (truth.ordered) return stated.a === truth.a;
  const pa = objects[stated.a]?.[stated.axis];
  const pb = objects[stated.b]?.[stated.axis];
  return pa !== undefined && pb !== undefined && pa < pb;
}

/** The result of comparing a predicted scene with the truth (see the module comment). */
export interface SceneComparison {
  exact: boolean;
  tp: number;
  fp: number;
  fn: number;
}

function attributeMatches(p: SceneObject, t: SceneObject): number {
  return Number(p.shape === t.shape) + Number(p.colour === t.colour) + Number(p.size === t.size);
}

/**
 * The one-to-one matching of truth objects to predicted objects (or none) with the most
 * agreeing attributes; ties go to the earliest predicted object (of all optimal matchings, the
 * first when each truth object's choices are ordered predicted 0, 1, … then none). Dynamic
 * programming over (truth object, set of predicted objects used), so that scenes of eight
 * objects (`--max-shapes`) match as fast as those of three.
 */
function matchObjects(predicted: readonly SceneObject[], truth: readonly SceneObject[]): (number | null)[] {
  // Only the first 30 predicted objects can be matched (a bit each); a caption the grammar writes names at most 8.
  const usable = Math.min(predicted.length, 30);
  // best(t, used): the most agreeing attributes truth objects t… can add with `used` taken.
  const memo = new Map<number, number>();
  const key = (t: number, used: number) => used * (truth.length + 1) + t;
  const best = (t: number, used: number): number => {
    if (t === truth.length) return 0;
    const k = key(t, used);
    const known = memo.get(k);
    if (known !== undefined) return known;
    let score = best(t + 1, used); // truth object t unmatched
    for (let p = 0; p < usable; p++) {
      if (used & (1 << p)) continue;
      const gain = attributeMatches(predicted[p]!, truth[t]!);
      if (gain === 0) continue; // pairing objects that share nothing helps no score
      score = Math.max(score, gain + best(t + 1, used | (1 << p)));
    }
    memo.set(k, score);
    return score;
  };
  const out: (number | null)[] = [];
  let used = 0;
  for (let t = 0; t < truth.length; t++) {
    const target = best(t, used);
    let choice: number | null = null;
    for (let p = 0; p < usable && choice === null; p++) {
      if (used & (1 << p)) continue;
      const gain = attributeMatches(predicted[p]!, truth[t]!);
      if (gain > 0 && gain + best(t + 1, used | (1 << p)) === target) choice = p;
    }
    if (choice !== null) used |= 1 << choice;
    out.push(choice);
  }
  return out;
}

/**
 * Compares a predicted scene (typically `parseShapesCaption` of a model's caption) with a
 * scene's ground truth: exact match and attribute-level counts for precision, recall and F1
 * (see the module comment for the definition). A caption that does not parse should be scored
 * as `compareScenes({objects: [], relations: []}, truth)`: every true fact missed.
 */
export function compareScenes(predicted: Scene, truth: Scene): SceneComparison {
  const match = matchObjects(predicted.objects, truth.objects);
  let tp = 0;
  let fp = 0;
  let fn = 0;
  const truthOfPredicted = new Map<number, number>();
  match.forEach((p, t) => {
    if (p === null) {
      fn += 3;
      return;
    }
    truthOfPredicted.set(p, t);
    const agree = attributeMatches(predicted.objects[p]!, truth.objects[t]!);
    tp += agree;
    fp += 3 - agree;
    fn += 3 - agree;
  });
  fp += 3 * (predicted.objects.length - truthOfPredicted.size);

  const truePlacements = truth.relations.map(placement);
  const covered = new Set<number>();
  for (const rel of predicted.relations) {
    const a = truthOfPredicted.get(rel.subject);
    const b = truthOfPredicted.get(rel.object);
    const stated =
      a === undefined || b === undefined ? null : placement({ subject: a, relation: rel.relation, object: b });
    const hit = stated ? truePlacements.findIndex((t) => agrees(stated, t, truth.objects)) : -1;
    if (hit < 0) fp += 1;
    else covered.add(hit);
  }
  tp += covered.size;
  fn += truePlacements.length - covered.size;
  return { exact: fp === 0 && fn === 0, tp, fp, fn };
}

/** Precision, recall and F1 (β = 1) from summed counts; 0 where undefined. */
export function attributeF1(counts: { tp: number; fp: number; fn: number }): {
  precision: number;
  recall: number;
  f1: number;
} {
  const { tp, fp, fn } = counts;
  const precision = tp + fp ? tp / (tp + fp) : 0;
  const recall = tp + fn ? tp / (tp + fn) : 0;
  const f1 = tp ? (2 * tp) / (2 * tp + fp + fn) : 0;
  return { precision, recall, f1 };
}

/**
 * Was the k-th object the caption names right? For each k < the scene's number of objects: the
 * k-th named object (in the caption's order) has the shape, colour and size of a true object that
 * no earlier named object already had. A caption that names fewer objects, or does not parse
 * (`predicted` null), is wrong at every position it does not reach. Our definition, for the long
 * captions of `--max-shapes`: how well the decoder still names objects many words into a caption.
 */
export function positionsRight(predicted: Scene | null, truth: Scene): boolean[] {
  const left = truth.objects.slice();
  return truth.objects.map((_, k) => {
    const named = predicted?.objects[k];
    const at = named ? left.findIndex((t) => attributeMatches(named, t) === 3) : -1;
    if (at < 0) return false;
    left.splice(at, 1);
    return true;
  });
}

/**
 * Adds one caption's `positionsRight` to per-position counts: `tally[k]` holds the captions whose
 * scene has a (k + 1)-th object and how many of them named it right.
 */
export function tallyPositions(tally: { captions: number; right: number }[], named: Scene | null, truth: Scene): void {
  positionsRight(named, truth).forEach((right, k) => {
    const at = (tally[k] ??= { captions: 0, right: 0 });
    at.captions += 1;
    if (right) at.right += 1;
  });
}

/** Accuracy at one position: of the captions whose scene has that many objects, how many named it right. */
export interface PositionAccuracy {
  /** Captions whose scene holds at least this many objects. */
  captions: number;
  right: number;
  rate: number;
}

/** Semantic accuracy of many captions: the exact-match rate and attribute P/R/F1 of the summed counts. */
export interface SemanticScores {
  count: number;
  exactRate: number;
  /** Captions the grammar cannot read (scored as stating nothing). */
  unparsed: number;
  precision: number;
  recall: number;
  f1: number;
  /** positions[k]: was the (k + 1)-th object named right (`positionsRight`), over the captions whose scene has one. */
  positions: PositionAccuracy[];
  /** Exact match by the number of objects in the scene, fewest first (only counts that occur). */
  byObjects: ObjectCountAccuracy[];
}

export interface ObjectCountAccuracy {
  objects: number;
  captions: number;
  exact: number;
  rate: number;
}

/**
 * Scores captions against their scenes' ground truth: each caption is parsed
 * (`parseShapesCaption`; one that does not parse states nothing) and compared (`compareScenes`);
 * counts are summed over captions before P/R/F1 (micro-averaging).
 */
export function semanticScores(items: Iterable<{ caption: string; truth: Scene }>): SemanticScores {
  let count = 0;
  let exact = 0;
  let unparsed = 0;
  const sum = { tp: 0, fp: 0, fn: 0 };
  const positions: { captions: number; right: number }[] = [];
  const byObjects = new Map<number, { captions: number; exact: number }>();
  for (const { caption, truth } of items) {
    count += 1;
    const parsed = parseShapesCaption(caption);
    if (!parsed) unparsed += 1;
    const c = compareScenes(parsed ?? { objects: [], relations: [] }, truth);
    if (c.exact) exact += 1;
    const group = byObjects.get(truth.objects.length) ?? { captions: 0, exact: 0 };
    byObjects.set(truth.objects.length, { captions: group.captions + 1, exact: group.exact + (c.exact ? 1 : 0) });
    sum.tp += c.tp;
    sum.fp += c.fp;
    sum.fn += c.fn;
    tallyPositions(positions, parsed, truth);
  }
  return {
    count,
    exactRate: count ? exact / count : 0,
    unparsed,
    ...attributeF1(sum),
    positions: positions.map((p) => ({ ...p, rate: p.right / p.captions })),
    byObjects: [...byObjects]
      .sort(([a], [b]) => a - b)
      .map(([objects, g]) => ({ objects, ...g, rate: g.exact / g.captions })),
  };
}
