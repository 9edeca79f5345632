/**
 * Sampling a shapes scene (its ground truth and how it is drawn) and writing its captions from a
 * small grammar with paraphrases: generator v1's forms, kept draw for draw, or v2's templates
 * (`CAPTION_TEMPLATES`). Everything is drawn from one seeded generator, so a scene and its
 * captions are a pure function of (seed, index, version).
 */
import type { Rng } from '../../model/util/rng.ts';
import { ptbTokenize } from '../../model/text/tokenize.ts';
import {
  COLOURS,
  HELD_OUT_PAIRS,
  SHAPES,
  SIZES,
  isHeldOut,
  type Relation,
  type Scene,
  type SceneObject,
} from './scene.ts';
import { PREFIXES, RELATION_PHRASES, SIZE_WORDS, SUFFIXES } from './semantics.ts';

/** How one object is drawn: radius as a fraction of the image side, rotation in degrees, fill. */
export interface ObjectStyle {
  radius: number;
  rotation: number;
  fill: string;
}

/** A scene and everything needed to draw it. */
export interface Drawing {
  scene: Scene;
  styles: ObjectStyle[];
  /** Background: a linear gradient between two colours (equal for a flat one), angle in degrees. */
  background: { from: string; to: string; angle: number };
  /** Standard deviation of the pixel noise, in 8-bit levels. */
  noise: number;
}

const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.int(items.length)]!;
const between = (rng: Rng, lo: number, hi: number): number => lo + (hi - lo) * rng.next();

/** Base hue (degrees) and lightness range of each colour name. */
const COLOUR_HSL: Record<string, { hue: number; light: [number, number] }> = {
  red: { hue: 0, light: [0.42, 0.55] },
  orange: { hue: 28, light: [0.5, 0.58] },
  yellow: { hue: 54, light: [0.5, 0.6] },
  green: { hue: 125, light: [0.35, 0.48] },
  blue: { hue: 220, light: [0.42, 0.55] },
  purple: { hue: 280, light: [0.4, 0.52] },
};

const SIZE_RADIUS: Record<string, number> = { small: 0.09, medium: 0.135, large: 0.18 };

function hsl(h: number, s: number, l: number): string {
  return `hsl(${(((h % 360) + 360) % 360) | 0},${Math.round(s * 100)}%,${Math.round(l * 100)}%)`;
}

/** The rotations that keep each shape recognisable (a square turned 45° is a diamond). */
const MAX_ROTATION: Record<string, number> = {
  circle: 0,
  square: 10,
  diamond: 10,
  triangle: 15,
  star: 36,
  hexagon: 30,
};

/**
 * Whether two objects sit plainly on a diagonal: neither axis dominates (the offsets differ by
 * less than 4 : 3). Two objects with no declared relation are placed so, well clear of the
 * "left of" / "above" geometry (where one axis is at least twice the other), so that a caption
 * without a relation is the right one for the picture and not a coin toss.
 */
function diagonal(a: { x: number; y: number }, b: { x: number; y: number }): boolean {
  const dx = Math.abs(b.x - a.x);
  const dy = Math.abs(b.y - a.y);
  return Math.min(dx, dy) >= 0.75 * Math.max(dx, dy);
}

/** Object centres satisfying the scene's relations and not overlapping; null if none found. */
function place(rng: Rng, scene: Scene, radii: readonly number[]): { x: number; y: number }[] | null {
  const unrelatedPair = radii.length === 2 && scene.relations.length === 0;
  for (let attempt = 0; attempt < 200; attempt++) {
    const pos = radii.map((r) => ({ x: between(rng, r + 0.03, 0.97 - r), y: between(rng, r + 0.03, 0.97 - r) }));
    const apart = pos.every((p, i) =>
      pos.every((q, j) => j <= i || Math.hypot(p.x - q.x, p.y - q.y) > radii[i]! + radii[j]! + 0.04),
    );
    const related = scene.relations.every(({ subject, relation, object }) => {
      const a = pos[subject]!;
      const b = pos[object]!;
      const gap = radii[subject]! + radii[object]! + 0.04;
      // The named axis must dominate clearly, so that the relation is plain to see.
      if (relation === 'left of') return b.x - a.x > gap && Math.abs(b.y - a.y) < 0.5 * (b.x - a.x);
      if (relation === 'above') return b.y - a.y > gap && Math.abs(b.x - a.x) < 0.5 * (b.y - a.y);
      return false;
    });
    if (apart && related && (!unrelatedPair || diagonal(pos[0]!, pos[1]!))) return pos;
  }
  return null;
}

/**
 * Centres for a scene of many objects (more than three, no relations), placed one after another,
 * each clear of those before it; null if one finds no room.
 */
function placeMany(rng: Rng, radii: readonly number[]): { x: number; y: number }[] | null {
  const pos: { x: number; y: number }[] = [];
  for (const r of radii) {
    let found: { x: number; y: number } | null = null;
    for (let attempt = 0; attempt < 200 && !found; attempt++) {
      const p = { x: between(rng, r + 0.03, 0.97 - r), y: between(rng, r + 0.03, 0.97 - r) };
      if (pos.every((q, j) => Math.hypot(p.x - q.x, p.y - q.y) > r + radii[j]! + 0.04)) found = p;
    }
    if (!found) return null;
    pos.push(found);
  }
  return pos;
}

/** How many objects a scene may hold. The default, 1–3, is every generator version's. */
export interface ShapeCount {
  min: number;
  max: number;
}

export const DEFAULT_SHAPE_COUNT: ShapeCount = { min: 1, max: 3 };

/** The most objects a scene may hold (`--max-shapes`): eight still fit side by side in the picture. */
export const MAX_SHAPES = 8;

/**
 * Samples a scene: 1–3 objects with distinct colour + shape pairs, sizes, and for two objects
 * (often) a declared relation, "left of" or "above". `compositional` scenes hold at least one
 * held-out pair; the others none.
 *
 * `shapes` other than 1–3 (the long-caption scenes of `--max-shapes`) draw the number of objects
 * uniformly from its range; a scene of more than three objects states no relation, and its
 * objects shrink by √(3 / count) so that they fit (sizes stay small < medium < large). The
 * default range draws exactly as before, so every existing seed gives the same scenes.
 */
export function sampleDrawing(rng: Rng, compositional: boolean, shapes: ShapeCount = DEFAULT_SHAPE_COUNT): Drawing {
  const standard = shapes.min === DEFAULT_SHAPE_COUNT.min && shapes.max === DEFAULT_SHAPE_COUNT.max;
  for (;;) {
    const u = rng.next();
    const count = standard
      ? u < 0.35
        ? 1
        : u < 0.75
          ? 2
          : 3
      : shapes.min + Math.min(shapes.max - shapes.min, Math.floor(u * (shapes.max - shapes.min + 1)));
    const objects: SceneObject[] = [];
    if (compositional) {
      const [colour, shape] = pick(rng, HELD_OUT_PAIRS);
      objects.push({ shape, colour, size: pick(rng, SIZES) });
    }
    while (objects.length < count) {
      const obj: SceneObject = { shape: pick(rng, SHAPES), colour: pick(rng, COLOURS), size: pick(rng, SIZES) };
      if (!compositional && isHeldOut(obj)) continue;
      if (objects.some((o) => o.shape === obj.shape && o.colour === obj.colour)) continue;
      objects.push(obj);
    }
    const ordered = rng.shuffle(objects);
    const scene: Scene = { objects: ordered, relations: [] };
    if (count === 2 && rng.next() < 0.6)
      scene.relations.push({ subject: 0, relation: rng.next() < 0.5 ? 'left of' : 'above', object: 1 });
    const shrink = count > 3 ? Math.sqrt(3 / count) : 1;
    const radii = ordered.map((o) => SIZE_RADIUS[o.size]! * shrink * between(rng, 0.92, 1.08));
    const pos = count > 3 ? placeMany(rng, radii) : place(rng, scene, radii);
    if (!pos) continue; // e.g. two large objects that cannot sit side by side: sample again
    ordered.forEach((o, i) => {
      o.x = Math.round(pos[i]!.x * 1000) / 1000;
      o.y = Math.round(pos[i]!.y * 1000) / 1000;
    });
    const styles = ordered.map((o, i) => {
      const c = COLOUR_HSL[o.colour]!;
      return {
        radius: radii[i]!,
        rotation: between(rng, -1, 1) * MAX_ROTATION[o.shape]!,
        fill: hsl(c.hue + between(rng, -6, 6), between(rng, 0.7, 0.95), between(rng, ...c.light)),
      };
    });
    const hue = rng.int(360);
    const sat = between(rng, 0, 0.18);
    const light = rng.next() < 0.7 ? between(rng, 0.72, 0.95) : between(rng, 0.1, 0.28);
    const from = hsl(hue, sat, light);
    const to =
      rng.next() < 0.5
        ? from
        : hsl(hue + between(rng, -40, 40), sat, Math.min(0.97, Math.max(0.05, light + between(rng, -0.1, 0.1))));
    return { scene, styles, background: { from, to, angle: rng.int(360) }, noise: between(rng, 0, 10) };
  }
}

function article(next: string): string {
  return /^[aeiou]/.test(next) ? 'an' : 'a';
}

/** "a small red circle", "an orange star", "one big blue square". */
function nounPhrase(rng: Rng, o: SceneObject, allowOne: boolean): string {
  const words = [...(o.size === 'medium' ? [] : [pick(rng, SIZE_WORDS[o.size])]), o.colour, o.shape];
  const det = allowOne && rng.next() < 0.2 ? 'one' : article(words[0]!);
  return [det, ...words].join(' ');
}

const CONVERSE: Record<Relation, Relation> = {
  'left of': 'right of',
  'right of': 'left of',
  above: 'below',
  below: 'above',
  'next to': 'next to',
};

const prefixWith = (count: number) => PREFIXES.filter((p) => p.count === count).map((p) => p.words);
const openings = PREFIXES.filter((p) => p.count === 0).map((p) => p.words);
const listOpenings = openings.filter((w) => w !== 'there is');

/**
 * One caption of a scene in generator v1's forms, picked at random. Kept as it was, draw for draw,
 * so that `--generator-version 1` writes the data the bundled model was trained on; it can write
 * an opening and a copula together ("the picture shows a red circle is above a blue square"),
 * which v2 (`CAPTION_TEMPLATES`) does not.
 */
function sampleCaptionV1(rng: Rng, scene: Scene): string {
  const objs = scene.objects;
  const frame = (body: string): string => {
    const u = rng.next();
    if (u < 0.4) return body;
    if (u < 0.8) return `${pick(rng, openings)} ${body}`;
    return `${body} ${pick(rng, SUFFIXES)}`;
  };
  if (objs.length === 1) return frame(nounPhrase(rng, objs[0]!, true));
  const rel = scene.relations[0];
  if (objs.length === 2 && rel) {
    let [x, y, relation] = [objs[rel.subject]!, objs[rel.object]!, rel.relation];
    if (rng.next() < 0.5) [x, y, relation] = [y, x, CONVERSE[relation]];
    if ((relation === 'left of' || relation === 'right of') && rng.next() < 0.25) relation = 'next to';
    const copula = rng.next() < 0.3 ? 'is ' : '';
    return frame(
      `${nounPhrase(rng, x, false)} ${copula}${pick(rng, RELATION_PHRASES[relation])} ${nounPhrase(rng, y, false)}`,
    );
  }
  const nps = rng.shuffle(objs).map((o) => nounPhrase(rng, o, false));
  const list = nps.length === 2 ? `${nps[0]} and ${nps[1]}` : `${nps.slice(0, -1).join(', ')} and ${nps.at(-1)}`;
  const u = rng.next();
  if (u < 0.4) return `${pick(rng, prefixWith(nps.length))}: ${list}`;
  if (u < 0.6) return `${pick(rng, listOpenings)} ${list}`;
  if (u < 0.75) return `${list} ${pick(rng, SUFFIXES)}`;
  return list;
}

/** Which templates can describe a scene: one object, two with a stated relation, or a list. */
export type SceneKind = 'single' | 'relation' | 'list';

/** The kind of caption a scene gets (a scene of two objects without a relation is a list). */
export function sceneKind(scene: Scene): SceneKind {
  if (scene.objects.length === 1) return 'single';
  return scene.objects.length === 2 && scene.relations.length > 0 ? 'relation' : 'list';
}

/**
 * A generator v2 caption template. Slots: `{np}` the one object ("a small red circle"); `{x}`,
 * `{rel}`, `{y}` the stated relation, either way round ("a blue square", "to the left of", "a
 * red circle"); `{list}` every object, in a random order ("a, b and c"); `{count}` their
 * number ("two").
 */
export interface CaptionTemplate {
  kind: SceneKind;
  text: string;
  /** Relative frequency among the templates of its kind. */
  weight: number;
  /** Whether the object may be counted instead of introduced: "there is one red circle". */
  allowOne?: boolean;
}

/**
 * Generator v2's templates: every one a sentence or caption a person would write. Unlike v1, an
 * opening ("the picture shows") never meets the copula ("is"), and left/right are always "to the
 * left of" / "on the left of", never a bare "left of". Every caption is one v1 could also write,
 * so `parseShapesCaption` reads both. The weights keep v1's proportions of bare, opened and
 * closed forms.
 */
export const CAPTION_TEMPLATES: readonly CaptionTemplate[] = [
  { kind: 'single', text: '{np}', weight: 0.4 },
  { kind: 'single', text: 'there is {np}', weight: 0.08, allowOne: true },
  { kind: 'single', text: 'an image of {np}', weight: 0.08 },
  { kind: 'single', text: 'a picture of {np}', weight: 0.08 },
  { kind: 'single', text: 'the picture shows {np}', weight: 0.08, allowOne: true },
  { kind: 'single', text: 'the image shows {np}', weight: 0.08, allowOne: true },
  { kind: 'single', text: '{np} in the picture', weight: 0.1 },
  { kind: 'single', text: '{np} in the image', weight: 0.1 },
  { kind: 'relation', text: '{x} {rel} {y}', weight: 0.28 },
  { kind: 'relation', text: '{x} is {rel} {y}', weight: 0.12 },
  { kind: 'relation', text: 'there is {x} {rel} {y}', weight: 0.08 },
  { kind: 'relation', text: 'an image of {x} {rel} {y}', weight: 0.08 },
  { kind: 'relation', text: 'a picture of {x} {rel} {y}', weight: 0.08 },
  { kind: 'relation', text: 'the picture shows {x} {rel} {y}', weight: 0.08 },
  { kind: 'relation', text: 'the image shows {x} {rel} {y}', weight: 0.08 },
  { kind: 'relation', text: '{x} {rel} {y} in the picture', weight: 0.07 },
  { kind: 'relation', text: '{x} {rel} {y} in the image', weight: 0.07 },
  { kind: 'relation', text: '{x} is {rel} {y} in the picture', weight: 0.03 },
  { kind: 'relation', text: '{x} is {rel} {y} in the image', weight: 0.03 },
  { kind: 'list', text: '{list}', weight: 0.25 },
  { kind: 'list', text: 'there are {count} shapes: {list}', weight: 0.2 },
  { kind: 'list', text: '{count} shapes: {list}', weight: 0.2 },
  { kind: 'list', text: 'an image of {list}', weight: 0.05 },
  { kind: 'list', text: 'a picture of {list}', weight: 0.05 },
  { kind: 'list', text: 'the picture shows {list}', weight: 0.05 },
  { kind: 'list', text: 'the image shows {list}', weight: 0.05 },
  { kind: 'list', text: '{list} in the picture', weight: 0.075 },
  { kind: 'list', text: '{list} in the image', weight: 0.075 },
];

/** v2's relation phrases: RELATION_PHRASES (which the parser reads) without the bare "left of" / "right of". */
export const RELATION_PHRASES_V2: Readonly<Record<Relation, readonly string[]>> = {
  'left of': ['to the left of', 'on the left of'],
  'right of': ['to the right of', 'on the right of'],
  above: ['above', 'over'],
  below: ['below', 'under', 'beneath'],
  'next to': ['next to', 'beside'],
};

const NUMBER_WORDS: Record<number, string> = {
  2: 'two',
  3: 'three',
  4: 'four',
  5: 'five',
  6: 'six',
  7: 'seven',
  8: 'eight',
};

/** The stated relation of a 'relation' scene, either way round; left/right is "next to" a quarter of the time. */
function statedRelation(rng: Rng, scene: Scene): { x: string; rel: string; y: string } {
  const rel = scene.relations[0]!;
  let [x, y, relation] = [scene.objects[rel.subject]!, scene.objects[rel.object]!, rel.relation];
  if (rng.next() < 0.5) [x, y, relation] = [y, x, CONVERSE[relation]];
  if ((relation === 'left of' || relation === 'right of') && rng.next() < 0.25) relation = 'next to';
  return { x: nounPhrase(rng, x, false), rel: pick(rng, RELATION_PHRASES_V2[relation]), y: nounPhrase(rng, y, false) };
}

/** A caption of `scene` from one template (of the scene's kind: see `sceneKind`), its choices drawn from `rng`. */
export function captionFromTemplate(rng: Rng, scene: Scene, template: CaptionTemplate): string {
  const kind = sceneKind(scene);
  if (template.kind !== kind) {
    throw new RangeError(`template "${template.text}" is for ${template.kind} scenes, not ${kind} ones`);
  }
  let slots: Record<string, string>;
  if (kind === 'single') {
    slots = { np: nounPhrase(rng, scene.objects[0]!, template.allowOne === true) };
  } else if (kind === 'relation') {
    slots = statedRelation(rng, scene);
  } else {
    const nps = rng.shuffle(scene.objects).map((o) => nounPhrase(rng, o, false));
    const list = `${nps.slice(0, -1).join(', ')} and ${nps.at(-1)}`;
    slots = { list, count: NUMBER_WORDS[nps.length] ?? String(nps.length) };
  }
  return template.text.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = slots[name];
    if (value === undefined) throw new RangeError(`template "${template.text}": no slot {${name}} for ${kind} scenes`);
    return value;
  });
}

/** One generator v2 caption of a scene: a template of its kind picked by weight, then filled. */
function sampleCaptionV2(rng: Rng, scene: Scene): string {
  const kind = sceneKind(scene);
  const templates = CAPTION_TEMPLATES.filter((t) => t.kind === kind);
  let u = rng.next() * templates.reduce((sum, t) => sum + t.weight, 0);
  const template = templates.find((t) => (u -= t.weight) < 0) ?? templates.at(-1)!;
  return captionFromTemplate(rng, scene, template);
}

/**
 * The longest caption, in words: the standard model's maxLength (model/nn/captioner.ts), so that no
 * training caption is cut (a cut caption no longer says what the scene is).
 */
export const MAX_CAPTION_WORDS = 16;

/**
 * The longest caption of a scene of `maxShapes` objects: MAX_CAPTION_WORDS up to three, else
 * room for every noun phrase of four words ("a small red circle"), "and", the longest opening
 * ("there are six shapes") and closing ("in the picture"): 4·n + 8.
 */
export function maxCaptionWords(maxShapes: number): number {
  return maxShapes <= 3 ? MAX_CAPTION_WORDS : 4 * maxShapes + 8;
}

/**
 * `n` different captions of a scene of at most `maxWords` words (fewer only if the grammar
 * cannot make `n`), in the forms of generator `version` (1: v1's, 2: `CAPTION_TEMPLATES`).
 */
export function sampleCaptions(
  rng: Rng,
  scene: Scene,
  n: number,
  version: 1 | 2,
  maxWords = MAX_CAPTION_WORDS,
): string[] {
  const sample = version === 1 ? sampleCaptionV1 : sampleCaptionV2;
  const out = new Set<string>();
  for (let tries = 0; out.size < n && tries < 50 * n; tries++) {
    const caption = sample(rng, scene);
    if (ptbTokenize(caption).length <= maxWords) out.add(caption);
  }
  return [...out];
}
