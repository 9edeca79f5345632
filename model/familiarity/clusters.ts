/**
 * k-means (Lloyd 1982, seeded as k-means++, Arthur & Vassilvitskii 2007): the "classes" of Lee
 * et al.'s class-conditional Gaussians when the images have no classes, as a caption data set's
 * have not. Squared Euclidean distance, a fixed number of iterations or until no row moves.
 */
import type { Rng } from '../util/rng.ts';

function squaredDistance(rows: Float32Array, row: number, centres: Float64Array, c: number, dims: number): number {
  let sum = 0;
  for (let j = 0; j < dims; j++) {
    const d = rows[row * dims + j]! - centres[c * dims + j]!;
    sum += d * d;
  }
  return sum;
}

/**
 * `k` centres of `rows` ([n, dims]) and each row's centre. Empty clusters keep their centre.
 * Deterministic for a given `rng` state.
 */
export function kMeans(
  rows: Float32Array,
  dims: number,
  k: number,
  rng: Rng,
  iterations = 25,
): { centres: Float64Array; assignment: Int32Array } {
  const n = rows.length / dims;
  if (!Number.isInteger(k) || k < 1 || k > n) throw new Error(`kMeans: k must be in 1..${n}, got ${k}`);
  const centres = new Float64Array(k * dims);
  const copyRow = (row: number, c: number) => {
    for (let j = 0; j < dims; j++) centres[c * dims + j] = rows[row * dims + j]!;
  };
  // k-means++: each next centre drawn with probability ∝ squared distance to the nearest so far.
  copyRow(rng.int(n), 0);
  const nearest = new Float64Array(n).fill(Infinity);
  for (let c = 1; c < k; c++) {
    let total = 0;
    for (let i = 0; i < n; i++) {
      nearest[i] = Math.min(nearest[i]!, squaredDistance(rows, i, centres, c - 1, dims));
      total += nearest[i]!;
    }
    let pick = n - 1;
    let u = rng.next() * total;
    for (let i = 0; i < n; i++) {
      u -= nearest[i]!;
      if (u < 0) {
        pick = i;
        break;
      }
    }
    copyRow(pick, c);
  }
  const assignment = new Int32Array(n).fill(-1);
  for (let it = 0; it < iterations; it++) {
    let moved = 0;
    for (let i = 0; i < n; i++) {
      let best = 0;
      let bestD = Infinity;
      for (let c = 0; c < k; c++) {
        const d = squaredDistance(rows, i, centres, c, dims);
        if (d < bestD) [best, bestD] = [c, d];
      }
      if (assignment[i] !== best) moved++;
      assignment[i] = best;
    }
    if (moved === 0) break;
    const sums = new Float64Array(k * dims);
    const counts = new Int32Array(k);
    for (let i = 0; i < n; i++) {
      const c = assignment[i]!;
      counts[c]!++;
      for (let j = 0; j < dims; j++) sums[c * dims + j]! += rows[i * dims + j]!;
    }
    for (let c = 0; c < k; c++) {
      if (counts[c] === 0) continue;
      for (let j = 0; j < dims; j++) centres[c * dims + j] = sums[c * dims + j]! / counts[c]!;
    }
  }
  return { centres, assignment };
}
