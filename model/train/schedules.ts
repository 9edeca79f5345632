/**
 * Schedules over training steps, as small pure functions.
 */

export type SamplingScheduleKind = 'constant' | 'linear' | 'exponential' | 'inverse-sigmoid';

export interface SamplingSchedule {
  kind: SamplingScheduleKind;
  /** The schedule's k: the constant ε, the linear start, the exponential base, the inverse-sigmoid k. */
  k: number;
  /** The linear schedule's slope c (ε falls by c per step). */
  c: number;
  /** The floor ε never goes below (Bengio et al.'s ε_min). */
  min: number;
}

/**
 * ε_i, the probability of feeding the true previous word at training step i, from Bengio et al.
 * 2015, "Scheduled Sampling for Sequence Prediction with Recurrent Neural Networks", §2.4:
 *   constant:        ε_i = k
 *   linear:          ε_i = max(ε_min, k − c·i)
 *   exponential:     ε_i = k^i            (k < 1)
 *   inverse sigmoid: ε_i = k / (k + exp(i / k))   (k ≥ 1)
 * Every schedule is floored at `min` and clamped to [0, 1].
 */
export function scheduledSamplingProbability(step: number, s: SamplingSchedule): number {
  let eps: number;
  switch (s.kind) {
    case 'constant':
      eps = s.k;
      break;
    case 'linear':
      eps = s.k - s.c * step;
      break;
    case 'exponential':
      eps = Math.pow(s.k, step);
      break;
    case 'inverse-sigmoid':
      eps = s.k / (s.k + Math.exp(step / s.k));
      break;
  }
  return Math.min(1, Math.max(s.min, eps, 0));
}

export type LrScheduleKind = 'constant' | 'cosine' | 'linear';

export interface LrSchedule {
  kind: LrScheduleKind;
  base: number;
  warmupSteps: number;
  /** Steps over which cosine and linear decay run; past it the rate stays at `min`. */
  decaySteps: number;
  min: number;
}

/**
 * The learning rate at `step`: linear warm-up from 0 over `warmupSteps` (as in nanoGPT's get_lr),
 * then constant, cosine decay or linear decay to `min` at `decaySteps`.
 */
export function learningRateAt(step: number, s: LrSchedule): number {
  if (step < s.warmupSteps) return (s.base * (step + 1)) / s.warmupSteps;
  if (s.kind === 'constant') return s.base;
  const span = Math.max(1, s.decaySteps - s.warmupSteps);
  const progress = Math.min(1, (step - s.warmupSteps) / span);
  const fraction = s.kind === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return s.min + (s.base - s.min) * fraction;
}
