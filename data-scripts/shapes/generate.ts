/**
 * The generated shapes data set: `count` scenes of 1–3 coloured shapes, five captions each from
 * the grammar, the scene's ground truth in every manifest record, a PNG per image (for
 * galleries) and the pixels in shards (for training). Image i depends only on (seed, i), so the
 * same seed gives the same bytes, and a prefix of a larger data set equals a smaller one.
 *
 * Splits: a `compositionalFraction` of scenes each hold a colour + shape pair from
 * HELD_OUT_PAIRS and form `test-compositional`; no other scene holds one, and the rest are
 * split train / val / test.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Rng, deriveSeed } from '../../model/util/rng.ts';
import { buildDataset, type BuildRecord, type BuildResult } from '../build.ts';
import { sampleCaptions, sampleDrawing, type Drawing } from './grammar.ts';
import { encodePng, renderDrawing } from './render.ts';

export const SHAPES_SPLITS = ['train', 'val', 'test', 'test-compositional'] as const;

export interface ShapesOptions {
  out: string;
  count: number;
  /** Image side in pixels (PNG and shards). */
  size: number;
  seed: number;
  captionsPerImage?: number;
  valFraction?: number;
  testFraction?: number;
  compositionalFraction?: number;
  /** For the vocabulary statistics in the manifest. */
  minWordCount?: number;
  maxLength?: number;
  concurrency?: number;
  onProgress?(done: number, total: number): void;
  log?(line: string): void;
}

/** Scene i of a data set: its split, drawing and captions, from (seed, i) alone. */
export function shapesScene(
  seed: number,
  index: number,
  opts: Pick<ShapesOptions, 'captionsPerImage' | 'valFraction' | 'testFraction' | 'compositionalFraction'> = {},
): { split: string; drawing: Drawing; captions: string[] } {
  const rng = new Rng(deriveSeed(seed, index));
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
  const drawing = sampleDrawing(rng, compositional);
  return { split, drawing, captions: sampleCaptions(rng, drawing.scene, opts.captionsPerImage ?? 5) };
}

/** Generates (or resumes generating) the shapes data set into `opts.out`. */
export async function generateShapes(opts: ShapesOptions): Promise<BuildResult> {
  for (const [key, value] of Object.entries({ count: opts.count, size: opts.size, seed: opts.seed })) {
    if (!Number.isInteger(value) || value < (key === 'seed' ? 0 : 1))
      throw new RangeError(
        `shapes: "${key}" must be a ${key === 'seed' ? 'non-negative' : 'positive'} integer, got ${value}`,
      );
  }
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
  const drawings: Drawing[] = [];
  const records: BuildRecord[] = [];
  const width = Math.max(6, String(opts.count - 1).length);
  for (let i = 0; i < opts.count; i++) {
    const { split, drawing, captions } = shapesScene(opts.seed, i, opts);
    const id = `shapes-${String(i).padStart(width, '0')}`;
    drawings.push(drawing);
    records.push({ id, split, captions, file: `images/${id}.png`, scene: drawing.scene });
  }
  const made = new Map<string, Promise<unknown>>();
  return buildDataset({
    out: opts.out,
    name: 'shapes',
    source: `captioner data shapes --count ${opts.count} --size ${opts.size} --seed ${opts.seed}`,
    imageSize: opts.size,
    records,
    fingerprint: { generator: 1, seed: opts.seed, fractions },
    async pixels(record, index, dir) {
      const pixels = await renderDrawing(drawings[index]!, opts.size, deriveSeed(opts.seed, index, 1));
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
