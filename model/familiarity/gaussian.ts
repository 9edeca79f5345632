/**
 * The maths of familiarity, as small pure functions over row-major Float32Array/Float64Array
 * matrices: the mean, the Ledoit–Wolf shrinkage covariance, its Cholesky factor and the
 * whitening it gives, the Mahalanobis distance, and the threshold at a quantile of calibration
 * scores. Computed in float64; the whitening is stored in float32 (model/familiarity/store.ts).
 *
 * A Gaussian fitted to a network's features and scored by the Mahalanobis distance is Lee et
 * al. 2018 ("A simple unified framework for detecting out-of-distribution samples and
 * adversarial attacks"); the covariance is shrunk towards a scaled identity as Ledoit & Wolf
 * 2004 ("A well-conditioned estimator for large-dimensional covariance matrices") choose the
 * weight, so that it is invertible even where the features span fewer dimensions than they have.
 */

/** Column means of `rows` ([n, dims] row-major). */
export function columnMeans(rows: Float32Array, dims: number): Float64Array {
  const n = rowCount(rows, dims);
  if (n === 0) throw new Error('columnMeans: no rows');
  const mean = new Float64Array(dims);
  for (let i = 0; i < n; i++) for (let j = 0; j < dims; j++) mean[j]! += rows[i * dims + j]!;
  for (let j = 0; j < dims; j++) mean[j]! /= n;
  return mean;
}

function rowCount(rows: ArrayLike<number>, dims: number): number {
  if (!Number.isInteger(dims) || dims < 1) throw new Error(`dims must be a whole number ≥ 1, got ${dims}`);
  if (rows.length % dims !== 0) throw new Error(`${rows.length} values are not whole rows of ${dims}`);
  return rows.length / dims;
}

/** The result of `shrunkCovariance`. */
export interface ShrunkCovariance {
  /** (1 − δ)·S + δ·m·I, [dims, dims] row-major. */
  covariance: Float64Array;
  /** δ in [0, 1]: the weight of the scaled identity. */
  shrinkage: number;
}

/**
 * The Ledoit–Wolf (2004) estimate of the covariance of `rows` ([n, dims]) about `mean` (each
 * row's own centre when `centres` gives one per row: a tied covariance around several means):
 * with S the sample covariance (divided by n), m = tr(S)/dims, d² = ‖S − m·I‖²,
 * b̄² = (1/n²)·Σₖ ‖xₖxₖᵀ − S‖² and b² = min(b̄², d²), the estimate is (b²/d²)·m·I + (1 − b²/d²)·S.
 * (Their Frobenius norm is scaled by 1/dims; the scale cancels in the ratio.)
 */
export function shrunkCovariance(
  rows: Float32Array,
  dims: number,
  centreOf: (row: number) => Float64Array,
): ShrunkCovariance {
  const n = rowCount(rows, dims);
  if (n < 2) throw new Error(`a covariance needs at least 2 rows, got ${n}`);
  const x = new Float64Array(dims);
  const centred = (i: number) => {
    const c = centreOf(i);
    for (let j = 0; j < dims; j++) x[j] = rows[i * dims + j]! - c[j]!;
    return x;
  };
  const s = new Float64Array(dims * dims);
  for (let i = 0; i < n; i++) {
    centred(i);
    for (let a = 0; a < dims; a++) {
      const xa = x[a]!;
      if (xa === 0) continue;
      for (let b = a; b < dims; b++) s[a * dims + b]! += xa * x[b]!;
    }
  }
  for (let a = 0; a < dims; a++) {
    for (let b = a; b < dims; b++) {
      s[a * dims + b]! /= n;
      s[b * dims + a] = s[a * dims + b]!;
    }
  }
  let trace = 0;
  for (let a = 0; a < dims; a++) trace += s[a * dims + a]!;
  const m = trace / dims;
  let d2 = 0;
  let sNorm2 = 0;
  for (let a = 0; a < dims; a++) {
    for (let b = 0; b < dims; b++) {
      const v = s[a * dims + b]!;
      sNorm2 += v * v;
      const off = v - (a === b ? m : 0);
      d2 += off * off;
    }
  }
  // ‖xxᵀ − S‖² = ‖x‖⁴ − 2·xᵀSx + ‖S‖²
  let sum = 0;
  for (let i = 0; i < n; i++) {
    centred(i);
    let norm2 = 0;
    let quad = 0;
    for (let a = 0; a < dims; a++) {
      const xa = x[a]!;
      norm2 += xa * xa;
      let row = 0;
      for (let b = 0; b < dims; b++) row += s[a * dims + b]! * x[b]!;
      quad += xa * row;
    }
    sum += norm2 * norm2 - 2 * quad + sNorm2;
  }
  // All rows equal (d² = 0): nothing to shrink towards but the identity's scale, which is 0 too.
  const shrinkage = d2 > 0 ? Math.min(sum / (n * n), d2) / d2 : 1;
  const covariance = new Float64Array(dims * dims);
  for (let k = 0; k < dims * dims; k++) covariance[k] = (1 - shrinkage) * s[k]!;
  for (let a = 0; a < dims; a++) covariance[a * dims + a]! += shrinkage * m;
  return { covariance, shrinkage };
}

/**
 * The lower-triangular L with L·Lᵀ = `a` ([dims, dims], symmetric positive definite), by the
 * Cholesky–Banachiewicz order. A matrix that is not positive definite is an error.
 */
export function cholesky(a: Float64Array, dims: number): Float64Array {
  const l = new Float64Array(dims * dims);
  for (let i = 0; i < dims; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * dims + j]!;
      for (let k = 0; k < j; k++) s -= l[i * dims + k]! * l[j * dims + k]!;
      if (i === j) {
        if (!(s > 0)) throw new Error(`cholesky: the matrix is not positive definite (pivot ${i} is ${s})`);
        l[i * dims + i] = Math.sqrt(s);
      } else {
        l[i * dims + j] = s / l[j * dims + j]!;
      }
    }
  }
  return l;
}

/** The inverse of a lower-triangular matrix (itself lower-triangular), by forward substitution. */
export function invertLower(l: Float64Array, dims: number): Float64Array {
  const inv = new Float64Array(dims * dims);
  for (let col = 0; col < dims; col++) {
    inv[col * dims + col] = 1 / l[col * dims + col]!;
    for (let i = col + 1; i < dims; i++) {
      let s = 0;
      for (let k = col; k < i; k++) s += l[i * dims + k]! * inv[k * dims + col]!;
      inv[i * dims + col] = -s / l[i * dims + i]!;
    }
  }
  return inv;
}

/**
 * The whitening W = L⁻¹ of a covariance Σ = L·Lᵀ: ‖W·(x − μ)‖ is the Mahalanobis distance
 * √((x − μ)ᵀ Σ⁻¹ (x − μ)).
 */
export function whitening(covariance: Float64Array, dims: number): Float64Array {
  return invertLower(cholesky(covariance, dims), dims);
}

/**
 * The Mahalanobis distance of row `row` of `rows` to the nearest of `means` ([k, dims]) under the
 * whitening `w` (lower-triangular [dims, dims], from `whitening`): min over k of ‖W·(x − μₖ)‖.
 * One mean is Lee et al.'s score with a single class; several, their class-conditional score
 * with a tied covariance.
 */
export function mahalanobis(
  rows: ArrayLike<number>,
  row: number,
  means: ArrayLike<number>,
  w: ArrayLike<number>,
  dims: number,
): number {
  const k = rowCount(means, dims);
  const diff = new Float64Array(dims);
  let best = Infinity;
  for (let c = 0; c < k; c++) {
    for (let j = 0; j < dims; j++) diff[j] = rows[row * dims + j]! - means[c * dims + j]!;
    let sum = 0;
    for (let a = 0; a < dims; a++) {
      let z = 0;
      for (let b = 0; b <= a; b++) z += w[a * dims + b]! * diff[b]!;
      sum += z * z;
    }
    best = Math.min(best, sum);
  }
  return Math.sqrt(best);
}

/**
 * The threshold that keeps `fraction` of the calibration `scores` familiar: the smallest of them
 * t with at least ⌈fraction·n⌉ scores ≤ t (a score is familiar when it is ≤ the threshold).
 */
export function familiarThreshold(scores: readonly number[], fraction: number): number {
  if (scores.length === 0) throw new Error('familiarThreshold: no calibration scores');
  if (!(fraction > 0 && fraction <= 1))
    throw new Error(`familiarThreshold: fraction must be in (0, 1], got ${fraction}`);
  if (scores.some((s) => !Number.isFinite(s))) throw new Error('familiarThreshold: a calibration score is not finite');
  const sorted = [...scores].sort((a, b) => a - b);
  // 0.975 · 400 is 390.00000000000006 in floating point: a hair off before rounding up.
  const keep = Math.max(1, Math.ceil(fraction * sorted.length - 1e-9));
  return sorted[keep - 1]!;
}
