/**
 * The generated shapes data set: `count` scenes of 1–3 coloured shapes, five captions each from
 * the grammar, the scene's ground truth in every manifest record, a PNG per image (for
 * galleries) and the pixels in shards (for training). Image i depends only on (seed, i, generator
 * version), so the same seed gives the same bytes, and a prefix of a larger data set equals a
 * smaller one.
 *
 * Generator versions (the manifest records `generatorVersion`):
 *   1  scene i of seed s is drawn from deriveSeed(s, i), which XORs seed and index, so seeds
 *      share their scenes in another order (scene i of seed s is scene i ^ s ^ t of seed t);
 *      captions in v1's forms, some ungrammatical. Kept bit for bit: the bundled model's data.
 *   2  (default) scene i of seed s is drawn from hashSeed(s, i): each seed its own stream of
 *      scenes; captions from CAPTION_TEMPLATES (grammar.ts). Scenes follow the same distribution.
 *
 * Long captions: `minShapes` / `maxShapes` other than 1 / 3 (`--min-shapes`, `--max-shapes`, v2
 * only) draw scenes of that many objects, up to MAX_SHAPES, whose list captions run to 30 words
 * and more; the default draws exactly the scenes above.
 *
 * Splits: a `compositionalFraction` of scenes each hold a colour + shape pair from
 * HELD_OUT_PAIRS and form `test-compositional`; no other scene holds one, and the rest are
 * split train / val / test.
 *
 * Selection (generator v2 only): `selectionCount` more scenes drawn from another seed,
 * `selectionSeed`, so that they share no scene with train, val or test beyond chance: the data a
 * recipe's choices are made on, besides val. A `selectionCompositionalFraction` of them hold a
 * held-out pair (`selection-compositional`), the rest none (`selection`). Scene i of the
 * selection is scene i of seed `selectionSeed` as `shapesScene` draws it, with that fraction.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Rng, deriveSeed, hashSeed } from '../../model/util/rng.ts';
import { buildDataset, type BuildRecord, type BuildResult } from '../build.ts';
import {
  DEFAULT_SHAPE_COUNT,
  MAX_SHAPES,
  maxCaptionWords,
  sampleCaptions,
  sampleDrawing,
  type Drawing,
  type ShapeCount,
} from './grammar.ts';
import { encodePng, renderDrawing } from './render.ts';

export const SHAPES_SPLITS = [
  'train',
  'val',
  'test',
  'test-compositional',
  'selection',
  'selection-compositional',
] as const;

/** The generator versions there are (see the module comment); the last is the default. */
export const SHAPES_GENERATOR_VERSIONS = [1, 2] as const;
/** A shapes generator version: 1 (the bundled model's data) or 2. */
export type ShapesGeneratorVersion = (typeof SHAPES_GENERATOR_VERSIONS)[number];
/** The version `captioner data shapes` and `generateShapes` use unless told otherwise. */
export const LATEST_SHAPES_GENERATOR: ShapesGeneratorVersion = 2;

/** `opts.generatorVersion`, checked, or the latest. */
function generatorVersion(opts: { generatorVersion?: ShapesGeneratorVersion }): ShapesGeneratorVersion {
  const version = opts.generatorVersion ?? LATEST_SHAPES_GENERATOR;
  if (!SHAPES_GENERATOR_VERSIONS.includes(version)) {
    throw new RangeError(
      `shapes: "generatorVersion" must be one of ${SHAPES_GENERATOR_VERSIONS.join(', ')}, got ${String(version)}`,
    );
  }
  return version;
}

export interface ShapesOptions {
  out: string;
  count: number;
  /** Image side in pixels (PNG and shards). */
  size: number;
  seed: number;
  /** 1 reproduces the data of earlier versions bit for bit; default LATEST_SHAPES_GENERATOR. */
  generatorVersion?: ShapesGeneratorVersion;
  captionsPerImage?: number;
  valFraction?: number;
  testFraction?: number;
  compositionalFraction?: number;
  /** Fewest objects in a scene (default 1). */
  minShapes?: number;
  /** Most objects in a scene (default 3, at most MAX_SHAPES): more make long captions. */
  maxShapes?: number;
  /** Scenes in the selection splits, drawn from `selectionSeed` (generator v2; default 0: none). */
  selectionCount?: number;
  /** The seed of the selection scenes: not `seed` (required when selectionCount > 0). */
  selectionSeed?: number;
  /** The share of selection scenes that hold a held-out pair (`selection-compositional`); default 0.5. */
  selectionCompositionalFraction?: number;
  /** For the vocabulary statistics in the manifest. */
  minWordCount?: number;
  maxLength?: number;
  concurrency?: number;
  onProgress?(done: number, total: number): void;
  log?(line: string): void;
}

type SceneOptions = Pick<
  ShapesOptions,
  | 'generatorVersion'
  | 'captionsPerImage'
  | 'valFraction'
  | 'testFraction'
  | 'compositionalFraction'
  | 'minShapes'
  | 'maxShapes'
>;

/**
 * The range of objects per scene the options ask for, checked: 1 ≤ min ≤ max ≤ MAX_SHAPES, and
 * only generator v2 writes other than 1–3.
 */
export function shapeCount(opts: SceneOptions): ShapeCount {
  const range = { min: opts.minShapes ?? DEFAULT_SHAPE_COUNT.min, max: opts.maxShapes ?? DEFAULT_SHAPE_COUNT.max };
  for (const [key, value] of [
    ['minShapes', range.min],
    ['maxShapes', range.max],
  ] as const) {
    if (!Number.isInteger(value) || value < 1 || value > MAX_SHAPES)
      throw new RangeError(`shapes: "${key}" must be an integer from 1 to ${MAX_SHAPES}, got ${value}`);
  }
  if (range.min > range.max)
    throw new RangeError(`shapes: "minShapes" (${range.min}) must not exceed "maxShapes" (${range.max})`);
  const standard = range.min === DEFAULT_SHAPE_COUNT.min && range.max === DEFAULT_SHAPE_COUNT.max;
  if (!standard && generatorVersion(opts) === 1)
    throw new RangeError('shapes: generator version 1 writes scenes of 1 to 3 objects only ("minShapes", "maxShapes")');
  return range;
}

/** A shapes scene: its split, drawing and captions, and the seed of its pixel noise. */
export interface ShapesScene {
  split: string;
  drawing: Drawing;
  captions: string[];
  /** The `noiseSeed` of renderDrawing for this scene. */
  noiseSeed: number;
}

/** The seeds of scene `index`'s draws and of its pixel noise, as generator `version` derives them. */
function sceneSeeds(version: ShapesGeneratorVersion, seed: number, index: number): { scene: number; noise: number } {
  return version === 1
    ? { scene: deriveSeed(seed, index), noise: deriveSeed(seed, index, 1) }
    : { scene: hashSeed(seed, index), noise: hashSeed(seed, index, 1) };
}

/** Scene i of a data set, from (seed, i, opts.generatorVersion) alone. */
export function shapesScene(seed: number, index: number, opts: SceneOptions = {}): ShapesScene {
  const version = generatorVersion(opts);
  const seeds = sceneSeeds(version, seed, index);
  const rng = new Rng(seeds.scene);
  const compositional = rng.next() < (opts.compositionalFraction ?? 0.1);
  const u = rng.next();
  const val = opts.valFraction ?? 0.1;
  const split = compositional
    ? 'test-compositional'
    : u < val
      ? 'val'
      : u < val + (opts.testFraction ?? 0.1)
        ? 'test'
        : 'train';
  const shapes = shapeCount(opts);
  const drawing = sampleDrawing(rng, compositional, shapes);
  const captions = sampleCaptions(rng, drawing.scene, opts.captionsPerImage ?? 5, version, maxCaptionWords(shapes.max));
  return { split, drawing, captions, noiseSeed: seeds.noise };
}

/** The command that makes the data set (the manifest's `source`): the options that differ from their defaults. */
function sourceCommand(opts: ShapesOptions, version: ShapesGeneratorVersion): string {
  const flags: [string, number | undefined, number][] = [
    ['captions-per-image', opts.captionsPerImage, 5],
    ['val-fraction', opts.valFraction, 0.1],
    ['test-fraction', opts.testFraction, 0.1],
    ['compositional-fraction', opts.compositionalFraction, 0.1],
    ['min-shapes', opts.minShapes, DEFAULT_SHAPE_COUNT.min],
    ['max-shapes', opts.maxShapes, DEFAULT_SHAPE_COUNT.max],
    ['selection-count', opts.selectionCount, 0],
    ['selection-seed', opts.selectionSeed, -1],
    ['selection-compositional-fraction', opts.selectionCompositionalFraction, 0.5],
  ];
  const extra = flags.filter(([, value, fallback]) => value !== undefined && value !== fallback);
  return [
    `captioner data shapes --count ${opts.count} --size ${opts.size} --seed ${opts.seed}`,
    `--generator-version ${version}`,
    ...extra.map(([flag, value]) => `--${flag} ${value}`),
  ].join(' ');
}

/**
 * The selection scenes `opts` ask for, checked: none by default; otherwise generator v2 (v1's
 * seeds share their scenes) and a seed other than the data set's.
 */
function selectionOptions(
  opts: ShapesOptions,
  version: ShapesGeneratorVersion,
): { count: number; seed: number; compositionalFraction: number } {
  const count = opts.selectionCount ?? 0;
  const compositionalFraction = opts.selectionCompositionalFraction ?? 0.5;
  if (!Number.isSafeInteger(count) || count < 0)
    throw new RangeError(`shapes: "selectionCount" must be a non-negative integer, got ${count}`);
  if (count === 0) return { count, seed: -1, compositionalFraction };
  if (version === 1)
    throw new RangeError(
      'shapes: a selection split needs generator version 2 (v1 draws the same scenes for every seed: docs/data.md)',
    );
  const seed = opts.selectionSeed;
  if (seed === undefined || !Number.isSafeInteger(seed) || seed < 0)
    throw new RangeError(`shapes: "selectionSeed" must be a non-negative integer when selectionCount > 0, got ${seed}`);
  if (seed === opts.seed)
    throw new RangeError(
      `shapes: "selectionSeed" must differ from "seed" (${seed}): the selection draws its own scenes`,
    );
  if (!(compositionalFraction >= 0 && compositionalFraction <= 1))
    throw new RangeError(`shapes: "selectionCompositionalFraction" must lie in [0, 1], got ${compositionalFraction}`);
  return { count, seed, compositionalFraction };
}

/** Generates (or resumes generating) the shapes data set into `opts.out`. */
export async function generateShapes(opts: ShapesOptions): Promise<BuildResult> {
  for (const [key, value] of Object.entries({ count: opts.count, size: opts.size, seed: opts.seed })) {
    if (!Number.isSafeInteger(value) || value < (key === 'seed' ? 0 : 1))
      throw new RangeError(
        `shapes: "${key}" must be a ${key === 'seed' ? 'non-negative' : 'positive'} integer, got ${value}`,
      );
  }
  const version = generatorVersion(opts);
  const shapes = shapeCount(opts);
  if (opts.size < 16) throw new RangeError(`shapes: "size" must be at least 16 pixels, got ${opts.size}`);
  const fractions = {
    val: opts.valFraction ?? 0.1,
    test: opts.testFraction ?? 0.1,
    compositional: opts.compositionalFraction ?? 0.1,
  };
  if (Object.values(fractions).some((f) => !(f >= 0 && f < 1)) || fractions.val + fractions.test >= 1) {
    throw new RangeError(
      `shapes: split fractions must lie in [0, 1) and val + test < 1, got ${JSON.stringify(fractions)}`,
    );
  }
  const selection = selectionOptions(opts, version);
  const scenes: ShapesScene[] = [];
  const records: BuildRecord[] = [];
  const add = (scene: ShapesScene, id: string) => {
    scenes.push(scene);
    records.push({
      id,
      split: scene.split,
      captions: scene.captions,
      file: `images/${id}.png`,
      scene: scene.drawing.scene,
    });
  };
  const width = Math.max(6, String(opts.count - 1).length);
  for (let i = 0; i < opts.count; i++)
    add(shapesScene(opts.seed, i, { ...opts, generatorVersion: version }), `shapes-${String(i).padStart(width, '0')}`);
  for (let i = 0; i < selection.count; i++) {
    const scene = shapesScene(selection.seed, i, {
      ...opts,
      generatorVersion: version,
      compositionalFraction: selection.compositionalFraction,
    });
    const split = scene.split === 'test-compositional' ? 'selection-compositional' : 'selection';
    add({ ...scene, split }, `selection-${String(i).padStart(6, '0')}`);
  }
  const made = new Map<string, Promise<unknown>>();
  return buildDataset({
    out: opts.out,
    name: 'shapes',
    source: sourceCommand(opts, version),
    manifestFields: { generatorVersion: version },
    imageSize: opts.size,
    records,
    // The shape range and the selection join the fingerprint only when they are not the
    // defaults, so that data sets made before they existed still resume.
    fingerprint: {
      generator: version,
      seed: opts.seed,
      fractions,
      ...(shapes.min !== DEFAULT_SHAPE_COUNT.min || shapes.max !== DEFAULT_SHAPE_COUNT.max ? { shapes } : {}),
      ...(selection.count ? { selection } : {}),
    },
    async pixels(record, index, dir) {
      const { drawing, noiseSeed } = scenes[index]!;
      const pixels = await renderDrawing(drawing, opts.size, noiseSeed);
      const path = join(dir, record.file);
      const folder = dirname(path);
      if (!made.has(folder)) made.set(folder, mkdir(folder, { recursive: true }));
      await made.get(folder);
      await writeFile(path, await encodePng(pixels, opts.size));
      return pixels;
    },
    concurrency: opts.concurrency,
    minWordCount: opts.minWordCount,
    maxLength: opts.maxLength,
    onProgress: opts.onProgress,
    log: opts.log,
  });
}
