import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cholesky,
  columnMeans,
  familiarThreshold,
  mahalanobis,
  shrunkCovariance,
  whitening,
} from '../../../model/familiarity/gaussian.ts';
import { kMeans } from '../../../model/familiarity/clusters.ts';
import { Rng } from '../../../model/util/rng.ts';

/** n rows of `dims` values: x = A·z + b with z standard normal, from `seed`. */
function gaussianRows(n: number, dims: number, seed: number, scale: (j: number) => number = () => 1, shift = 0) {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n * dims }, (_, k) => shift + scale(k % dims) * rng.normal());
}

test('shrunkCovariance follows Ledoit and Wolf 2004 term by term, computed here the slow way', () => {
  const dims = 3;
  const rows = Float32Array.from([1, 2, 0.5, -1, 0, 2, 3, 1, -1, 0.5, -2, 1, 2, 2, 0]);
  const n = rows.length / dims;
  const mean = columnMeans(rows, dims);
  const x = Array.from({ length: n }, (_, i) => Array.from({ length: dims }, (_, j) => rows[i * dims + j]! - mean[j]!));
  const s = Array.from({ length: dims }, (_, a) =>
    Array.from({ length: dims }, (_, b) => x.reduce((sum, r) => sum + r[a]! * r[b]!, 0) / n),
  );
  const m = (s[0]![0]! + s[1]![1]! + s[2]![2]!) / dims;
  const frob = (f: (a: number, b: number) => number) => {
    let sum = 0;
    for (let a = 0; a < dims; a++) for (let b = 0; b < dims; b++) sum += f(a, b) ** 2;
    return sum;
  };
  const d2 = frob((a, b) => s[a]![b]! - (a === b ? m : 0));
  const b2bar = x.reduce((sum, r) => sum + frob((a, b) => r[a]! * r[b]! - s[a]![b]!), 0) / (n * n);
  const delta = Math.min(b2bar, d2) / d2;

  const got = shrunkCovariance(rows, dims, () => mean);
  assert.ok(Math.abs(got.shrinkage - delta) < 1e-12, `${got.shrinkage} vs ${delta}`);
  for (let a = 0; a < dims; a++)
    for (let b = 0; b < dims; b++) {
      const want = (1 - delta) * s[a]![b]! + (a === b ? delta * m : 0);
      assert.ok(Math.abs(got.covariance[a * dims + b]! - want) < 1e-12);
    }
});

test('shrinkage: near 1 for isotropic data, near 0 for strongly correlated data with many rows', () => {
  const dims = 6;
  const iso = gaussianRows(4000, dims, 1);
  assert.ok(shrunkCovariance(iso, dims, () => columnMeans(iso, dims)).shrinkage > 0.5);
  // Every column a multiple of one shared factor, plus a little noise: far from a scaled identity.
  const rng = new Rng(2);
  const correlated = new Float32Array(4000 * dims);
  for (let i = 0; i < 4000; i++) {
    const f = rng.normal();
    for (let j = 0; j < dims; j++) correlated[i * dims + j] = (j + 1) * f + 0.05 * rng.normal();
  }
  assert.ok(shrunkCovariance(correlated, dims, () => columnMeans(correlated, dims)).shrinkage < 0.05);
});

test('the whitening turns the covariance into the identity, and the Cholesky factor rebuilds it', () => {
  const dims = 5;
  const rows = gaussianRows(300, dims, 3, (j) => j + 1);
  const { covariance } = shrunkCovariance(rows, dims, () => columnMeans(rows, dims));
  const l = cholesky(covariance, dims);
  const w = whitening(covariance, dims);
  for (let a = 0; a < dims; a++)
    for (let b = 0; b < dims; b++) {
      let llt = 0;
      let wcw = 0;
      for (let k = 0; k < dims; k++) {
        llt += l[a * dims + k]! * l[b * dims + k]!;
        for (let q = 0; q < dims; q++) wcw += w[a * dims + k]! * covariance[k * dims + q]! * w[b * dims + q]!;
      }
      assert.ok(Math.abs(llt - covariance[a * dims + b]!) < 1e-9);
      assert.ok(Math.abs(wcw - (a === b ? 1 : 0)) < 1e-9, `WΣWᵀ[${a}][${b}] = ${wcw}`);
    }
  assert.throws(() => cholesky(Float64Array.from([1, 2, 2, 1]), 2), /not positive definite/);
});

test('mahalanobis: with a diagonal covariance it is the variance-scaled distance, to the nearest mean', () => {
  const variances = [4, 1, 0.25];
  const covariance = Float64Array.from([4, 0, 0, 0, 1, 0, 0, 0, 0.25]);
  const w = whitening(covariance, 3);
  const point = Float32Array.from([2, 1, 0.5]);
  const expected = Math.sqrt(variances.reduce((s, v, j) => s + [2, 1, 0.5][j]! ** 2 / v, 0));
  assert.ok(Math.abs(mahalanobis(point, 0, [0, 0, 0], w, 3) - expected) < 1e-12);
  // Two means: the distance is to the nearer one.
  assert.ok(Math.abs(mahalanobis(point, 0, [10, 10, 10, 2, 1, 0.5], w, 3)) < 1e-12);
});

test('a point far from the data scores far above the data, whose held-out rows fall mostly below the threshold', () => {
  const dims = 8;
  const fit = gaussianRows(2000, dims, 4, (j) => 1 + j / 4, 3);
  const held = gaussianRows(1000, dims, 5, (j) => 1 + j / 4, 3);
  const mean = columnMeans(fit, dims);
  const { covariance } = shrunkCovariance(fit, dims, () => mean);
  const w = whitening(covariance, dims);
  const scores = Array.from({ length: 1000 }, (_, i) => mahalanobis(held, i, mean, w, dims));
  const threshold = familiarThreshold(scores.slice(0, 500), 0.975);
  const rest = scores.slice(500);
  // The other half of the held-out rows: about 97.5 % familiar (a binomial spread of 500 draws).
  const familiarShare = rest.filter((s) => s <= threshold).length / rest.length;
  assert.ok(familiarShare > 0.95 && familiarShare <= 1, `share ${familiarShare}`);
  const far = Float32Array.from({ length: dims }, (_, j) => (j === 0 ? 3 + 10 * 1 : 3));
  const farScore = mahalanobis(far, 0, mean, w, dims);
  assert.ok(farScore > 2 * threshold, `far ${farScore}, threshold ${threshold}`);
  assert.ok(Math.abs(farScore - 10) < 1, `ten standard deviations away along the first axis scores ≈ 10: ${farScore}`);
});

test('familiarThreshold: the smallest score that keeps the fraction familiar', () => {
  const scores = Array.from({ length: 400 }, (_, i) => 400 - i); // 400 … 1, unsorted order
  assert.equal(familiarThreshold(scores, 0.975), 390); // 390 of 400 ≤ 390: exactly 97.5 %
  const odd = Array.from({ length: 2816 }, (_, i) => i + 1);
  const t = familiarThreshold(odd, 0.975);
  assert.equal(t, Math.ceil(0.975 * 2816));
  assert.ok(odd.filter((s) => s <= t).length / odd.length >= 0.975);
  assert.ok(odd.filter((s) => s <= t - 1).length / odd.length < 0.975);
  assert.equal(familiarThreshold([5], 0.975), 5);
  assert.equal(familiarThreshold([3, 1, 2], 1), 3);
  assert.throws(() => familiarThreshold([], 0.975), /no calibration scores/);
  assert.throws(() => familiarThreshold([1], 0), /fraction/);
  assert.throws(() => familiarThreshold([1, NaN], 0.5), /not finite/);
});

test('kMeans finds two well-separated blobs, deterministically for a seed', () => {
  const dims = 2;
  const a = gaussianRows(200, dims, 6, () => 0.3, -5);
  const b = gaussianRows(200, dims, 7, () => 0.3, 5);
  const rows = new Float32Array([...a, ...b]);
  const { centres, assignment } = kMeans(rows, dims, 2, new Rng(1));
  const sorted = [
    [centres[0]!, centres[1]!],
    [centres[2]!, centres[3]!],
  ].sort((p, q) => p[0]! - q[0]!);
  for (const v of sorted[0]!) assert.ok(Math.abs(v + 5) < 0.2);
  for (const v of sorted[1]!) assert.ok(Math.abs(v - 5) < 0.2);
  assert.equal(new Set(assignment.slice(0, 200)).size, 1);
  assert.equal(new Set(assignment.slice(200)).size, 1);
  assert.notEqual(assignment[0], assignment[200]);
  assert.deepEqual(kMeans(rows, dims, 2, new Rng(1)).centres, centres);
});
