/**
 * Compares candidate familiarity features and densities on a development set (docs/familiarity.md,
 * "How the features were chosen"): each candidate is fitted on training images, its threshold
 * set on val as `captioner calibrate` sets it, and it is judged by the share of fresh shapes
 * scenes it finds familiar and the photographs it flags. Never give it the sets a figure is
 * reported on. Candidates are statistics of the first two conv blocks' maps and of the image's
 * chroma (model/familiarity/features.ts), combined as COMBOS lists; densities are one Gaussian
 * (as calibrate fits) or k-NN in its whitened space (Sun et al. 2022's nearest-neighbour score).
 * `--cache DIR` keeps every set's statistics in DIR/pieces.json, so that a run for other
 * densities or combinations reads them instead of running the encoder again.
 *
 *   node --import tsx scripts/familiarity-compare.ts --model models/default --data data/shapes60k \
 *       --fresh data/shapes-v2-seed9002 --fit 5000 --densities gaussian,knn1,knn10 PHOTO…
 */
import { parseArgs } from 'node:util';
import { basename, join } from 'node:path';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../model/runtime/backend.ts';
import { loadModel } from '../model/io/load.ts';
import { ImageCache, readManifest, splitImages, type DatasetImage } from '../model/data/dataset.ts';
import { imagesToTensor, loadImagePixels } from '../model/data/image.ts';
import { evenlySpread } from '../model/familiarity/calibrate.ts';
import { chromaStatistics } from '../model/familiarity/features.ts';
import {
  columnMeans,
  familiarThreshold,
  mahalanobis,
  shrunkCovariance,
  whitening,
} from '../model/familiarity/gaussian.ts';

const { values, positionals } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/default' },
    data: { type: 'string', default: 'data/shapes60k' },
    fresh: { type: 'string' },
    fit: { type: 'string', default: '5000' },
    cache: { type: 'string' },
    densities: { type: 'string' },
  },
  allowPositionals: true,
});

await selectBackend();
const { model } = await loadModel(values.model);
const size = model.config.imageSize;

type Rows = Record<string, Float32Array>;

/** Per-channel statistics over positions of a map [batch, h, w, c]: each [batch, c]. */
function stats(map: tf.Tensor4D): Record<string, tf.Tensor2D> {
  const { mean, variance } = tf.moments(map, [1, 2]);
  const pooled = tf.avgPool(map, 2, 2, 'valid'); // [batch, h/2, w/2, c]: a max robust to one noisy pixel
  return {
    mean: mean as tf.Tensor2D,
    std: tf.sqrt(variance) as tf.Tensor2D,
    max: tf.max(map, [1, 2]) as tf.Tensor2D,
    pmax: tf.max(pooled, [1, 2]) as tf.Tensor2D,
    pmin: tf.min(pooled, [1, 2]) as tf.Tensor2D,
  };
}

const PIECES = [
  'b0.mean',
  'b0.std',
  'b0.max',
  'b0.pmax',
  'b0.pmin',
  'b1.mean',
  'b1.std',
  'b1.max',
  'px.chromaMax',
  'px.chromaMean',
  'px.saturated',
];

/** Every piece's rows for `images` [n, size, size, 3]. */
function candidates(t: tf.Tensor4D): Rows {
  const out: Rows = {};
  const pieces = tf.tidy(() => {
    const maps = model.encoder.convMaps(t, false, 2) as tf.Tensor4D[];
    const named: Record<string, tf.Tensor2D> = {};
    maps.forEach((m, b) => {
      for (const [k, v] of Object.entries(stats(m))) named[`b${b}.${k}`] = v;
    });
    return named;
  });
  for (const name of PIECES.filter((p) => !p.startsWith('px.'))) out[name] = pieces[name]!.dataSync() as Float32Array;
  tf.dispose(Object.values(pieces));
  // The chroma statistics as the recipe computes them: [n, 3] → a piece per column.
  const chroma = chromaStatistics(t);
  ['px.chromaMean', 'px.saturated', 'px.chromaMax'].forEach((name, k) => {
    out[name] = Float32Array.from({ length: chroma.length / 3 }, (_, i) => chroma[i * 3 + k]!);
  });
  return out;
}

async function setRows(dataDir: string, images: readonly DatasetImage[]): Promise<{ rows: Rows; n: number }> {
  const cache = await ImageCache.load(dataDir, images, size);
  const parts: Rows[] = [];
  for (let s = 0; s < images.length; s += 128) {
    const batch = images.slice(s, s + 128);
    const t = tf.tensor4d(cache.batch(batch.map((i) => i.id)), [batch.length, size, size, 3]);
    parts.push(candidates(t));
    t.dispose();
  }
  return { rows: concat(parts), n: images.length };
}

function concat(parts: Rows[]): Rows {
  const out: Rows = {};
  for (const key of Object.keys(parts[0]!)) {
    const total = parts.reduce((n, p) => n + p[key]!.length, 0);
    const all = new Float32Array(total);
    let at = 0;
    for (const p of parts) {
      all.set(p[key]!, at);
      at += p[key]!.length;
    }
    out[key] = all;
  }
  return out;
}

interface SetRows {
  rows: Rows;
  n: number;
}

/** The pieces of every set, from `--cache` when it holds them (a run per density is then quick). */
async function allSets(): Promise<{ fit: SetRows; val: SetRows; fresh: SetRows | null; photos: SetRows }> {
  const cacheFile = values.cache ? join(values.cache, 'pieces.json') : null;
  if (cacheFile && existsSync(cacheFile)) {
    const raw = JSON.parse(await readFile(cacheFile, 'utf8')) as Record<
      string,
      { n: number; rows: Record<string, number[]> }
    >;
    const back = (r: { n: number; rows: Record<string, number[]> } | undefined): SetRows | null =>
      r
        ? { n: r.n, rows: Object.fromEntries(Object.entries(r.rows).map(([k, v]) => [k, Float32Array.from(v)])) }
        : null;
    return { fit: back(raw.fit)!, val: back(raw.val)!, fresh: back(raw.fresh), photos: back(raw.photos)! };
  }
  const manifest = await readManifest(values.data);
  const fit = await setRows(values.data, evenlySpread(splitImages(manifest, 'train'), Number(values.fit)));
  const val = await setRows(values.data, splitImages(manifest, 'val'));
  const fresh = values.fresh ? await setRows(values.fresh, (await readManifest(values.fresh)).images) : null;
  const pixels = await Promise.all(positionals.map((p) => loadImagePixels(p, size)));
  const photoT = imagesToTensor(pixels, size);
  const photos = { rows: candidates(photoT), n: positionals.length };
  photoT.dispose();
  if (cacheFile) {
    const plain = (r: SetRows | null) =>
      r && { n: r.n, rows: Object.fromEntries(Object.entries(r.rows).map(([k, v]) => [k, Array.from(v)])) };
    await writeFile(
      cacheFile,
      JSON.stringify({ fit: plain(fit), val: plain(val), fresh: plain(fresh), photos: plain(photos) }),
    );
  }
  return { fit, val, fresh, photos };
}

const sets = await allSets();
model.dispose();
const names = positionals.map((p) => basename(p.replace(/\/contents\/images\/[^/]+$/, '')));

/** The rows of `set` with the columns of `pieces`, side by side: [n, Σ widths]. */
function combine(set: SetRows, pieces: readonly string[]): { rows: Float32Array; dims: number } {
  const widths = pieces.map((p) => set.rows[p]!.length / set.n);
  const dims = widths.reduce((a, b) => a + b, 0);
  const rows = new Float32Array(set.n * dims);
  for (let i = 0; i < set.n; i++) {
    let at = i * dims;
    pieces.forEach((p, k) => {
      rows.set(set.rows[p]!.subarray(i * widths[k]!, (i + 1) * widths[k]!), at);
      at += widths[k]!;
    });
  }
  return { rows, dims };
}

type Scorer = (x: Float32Array) => number[];

function whitened(rows: Float32Array, dims: number) {
  const means = columnMeans(rows, dims);
  const { covariance } = shrunkCovariance(rows, dims, () => means);
  return { means, w: whitening(covariance, dims) };
}

function gaussianScorer(rows: Float32Array, dims: number): Scorer {
  const { means, w } = whitened(rows, dims);
  return (x) => Array.from({ length: x.length / dims }, (_, i) => mahalanobis(x, i, means, w, dims));
}

/** Whitens every row: z = W·(x − μ). */
function whiten(rows: Float32Array, dims: number, means: Float64Array, w: Float64Array): Float32Array {
  const out = new Float32Array(rows.length);
  for (let i = 0; i < rows.length / dims; i++)
    for (let a = 0; a < dims; a++) {
      let z = 0;
      for (let b = 0; b <= a; b++) z += w[a * dims + b]! * (rows[i * dims + b]! - means[b]!);
      out[i * dims + a] = z;
    }
  return out;
}

/** The distance to the k-th nearest fit row, in the whitened space (Sun et al. 2022 with Mahalanobis whitening). */
function knnScorer(rows: Float32Array, dims: number, k: number): Scorer {
  const { means, w } = whitened(rows, dims);
  const ref = whiten(rows, dims, means, w);
  const n = rows.length / dims;
  return (x) => {
    const q = whiten(x, dims, means, w);
    return Array.from({ length: x.length / dims }, (_, i) => {
      const best = new Float64Array(k).fill(Infinity);
      for (let r = 0; r < n; r++) {
        let d = 0;
        for (let j = 0; j < dims && d < best[k - 1]!; j++) {
          const t = q[i * dims + j]! - ref[r * dims + j]!;
          d += t * t;
        }
        if (d < best[k - 1]!) {
          let at = k - 1;
          while (at > 0 && best[at - 1]! > d) {
            best[at] = best[at - 1]!;
            at--;
          }
          best[at] = d;
        }
      }
      return Math.sqrt(best[k - 1]!);
    });
  };
}

const CHROMA = ['px.chromaMean', 'px.saturated', 'px.chromaMax'];
const COMBOS: Record<string, string[]> = {
  'b1 mean+std (first-block-moments)': ['b0.mean', 'b0.std'],
  'b1 mean+std+max': ['b0.mean', 'b0.std', 'b0.max'],
  'b1+b2 mean+std': ['b0.mean', 'b0.std', 'b1.mean', 'b1.std'],
  'b1 mean+std+max, b2 max': ['b0.mean', 'b0.std', 'b0.max', 'b1.max'],
  'chroma only': CHROMA,
  'b1 mean+std + chroma mean': ['b0.mean', 'b0.std', 'px.chromaMean'],
  'b1 mean+std + vivid share': ['b0.mean', 'b0.std', 'px.saturated'],
  'b1 mean+std + vivid patch': ['b0.mean', 'b0.std', 'px.chromaMax'],
  'b1 mean+std + chroma (first-block-moments-chroma)': ['b0.mean', 'b0.std', ...CHROMA],
  'b1+b2 mean+std + chroma': ['b0.mean', 'b0.std', 'b1.mean', 'b1.std', ...CHROMA],
  'b1 mean+std+max, b2 max + chroma': ['b0.mean', 'b0.std', 'b0.max', 'b1.max', ...CHROMA],
};
const DENSITIES = (values.densities ?? 'gaussian,knn1,knn10').split(',');

console.log(`fit ${sets.fit.n}, val ${sets.val.n}, fresh ${sets.fresh?.n ?? 0}, photos ${sets.photos.n}\n`);
console.log('| candidate | density | dims | fresh familiar | photos flagged | lowest photo / threshold | missed |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const [name, pieces] of Object.entries(COMBOS)) {
  const fit = combine(sets.fit, pieces);
  for (const density of DENSITIES) {
    const score: Scorer =
      density === 'gaussian'
        ? gaussianScorer(fit.rows, fit.dims)
        : knnScorer(fit.rows, fit.dims, Number(density.slice(3)));
    const threshold = familiarThreshold(score(combine(sets.val, pieces).rows), 0.975);
    const freshShare = sets.fresh
      ? score(combine(sets.fresh, pieces).rows).filter((s) => s <= threshold).length / sets.fresh.n
      : NaN;
    const photoScores = score(combine(sets.photos, pieces).rows);
    const flagged = photoScores.filter((s) => s > threshold).length;
    const missed = names.filter((_, i) => photoScores[i]! <= threshold);
    console.log(
      `| ${name} | ${density} | ${fit.dims} | ${(freshShare * 100).toFixed(1)} % | ${flagged} / ${sets.photos.n} | ${(Math.min(...photoScores) / threshold).toFixed(2)} | ${missed.join(', ')} |`,
    );
  }
}
