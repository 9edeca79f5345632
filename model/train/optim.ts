/**
 * Adam, plain SGD and gradient clipping. Adam is written out (rather than tf.train.adam) so that its state
 * (the moments and the step) is plain named tensors that a checkpoint saves and restores
 * exactly, and so that the learning rate can follow a schedule step by step.
 *
 * With the native kernels on, the global norm is one native pass over the gradients and Adam
 * one native pass over each variable, its moments and its gradient, scaled by the clip
 * (model/runtime/fused.ts), with the same float32 arithmetic as the TF.js ops below. That pass
 * updates the variables' and moments' values in place: an array read from one with dataSync()
 * before a step changes with it (copy it, with .slice(), to keep it).
 */
import * as tf from '@tensorflow/tfjs';
import { fusedAdamUpdate, fusedSumOfSquares } from '../runtime/fused-optim.ts';

/** The global L2 norm of all gradients: √(Σ over tensors of Σ g²). */
export function globalNorm(grads: tf.NamedTensorMap): number {
  const tensors = Object.values(grads);
  const fused = fusedSumOfSquares(tensors);
  if (fused !== null) return Math.sqrt(fused);
  return tf.tidy(() => Math.sqrt(tf.addN(tensors.map((g) => tf.sum(tf.square(g)))).dataSync()[0]!));
}

/** The factor that brings a gradient of global norm `norm` down to `maxNorm` (1 when under it, or maxNorm 0). */
export function clipScale(norm: number, maxNorm: number): number {
  return maxNorm > 0 && norm > maxNorm ? maxNorm / norm : 1;
}

/**
 * Rescales gradients so that their global L2 norm is at most `maxNorm` (Pascanu et al. 2013):
 * the direction is kept and only exploding steps are shortened. maxNorm 0 turns it off.
 * Returns new tensors (the caller disposes the inputs) and the norm before clipping. A training
 * step passes the scale to `Adam.apply` instead, which applies it in the same pass.
 */
export function clipByGlobalNorm(
  grads: tf.NamedTensorMap,
  maxNorm: number,
): { grads: tf.NamedTensorMap; norm: number } {
  const names = Object.keys(grads);
  const norm = globalNorm(grads);
  const scale = clipScale(norm, maxNorm);
  const out: tf.NamedTensorMap = {};
  for (const n of names) out[n] = tf.tidy(() => (scale === 1 ? grads[n]!.clone() : tf.mul(grads[n]!, scale)));
  return { grads: out, norm };
}

/**
 * What a training step asks of its optimiser: one update of the named variables from their
 * gradients at a learning rate, every gradient first scaled by `gradScale` (clipping), and its
 * state as named tensors for checkpoints.
 */
export interface Optimizer {
  /** Updates applied so far. */
  step: number;
  apply(
    variables: Record<string, tf.Variable>,
    grads: tf.NamedTensorMap,
    learningRate: number,
    gradScale?: number,
  ): void;
  stateTensors(): tf.NamedTensorMap;
  restore(state: tf.NamedTensorMap, step: number): void;
  dispose(): void;
}

/** The optimisers `--optimizer` chooses from. */
export type OptimizerKind = 'adam' | 'sgd';

/** A new optimiser of the kind named. */
export function createOptimizer(kind: OptimizerKind): Optimizer {
  return kind === 'sgd' ? new Sgd() : new Adam();
}

/**
 * Plain stochastic gradient descent, θ ← θ − lr · g: a step as long as the gradient is large, so
 * that an exploding gradient throws the weights far (Pascanu, Mikolov & Bengio 2013), which Adam's
 * division by the gradients' running RMS hides. For the RNN lab's clipping experiment; it has no
 * state but its step count.
 */
export class Sgd implements Optimizer {
  step = 0;

  apply(variables: Record<string, tf.Variable>, grads: tf.NamedTensorMap, learningRate: number, gradScale = 1): void {
    this.step += 1;
    for (const [name, grad] of Object.entries(grads)) {
      const variable = variables[name];
      if (!variable) throw new Error(`SGD: gradient for unknown variable ${name}`);
      tf.tidy(() => variable.assign(tf.sub(variable, tf.mul(grad, learningRate * gradScale))));
    }
  }

  stateTensors(): tf.NamedTensorMap {
    return {};
  }

  /** SGD keeps no moments: a checkpoint with optimiser state is another optimiser's (Adam's). */
  restore(state: tf.NamedTensorMap, step: number): void {
    const keys = Object.keys(state);
    if (keys.length) throw new Error(`optimizer state: ${keys[0]} is not SGD's (the checkpoint was trained with Adam)`);
    this.step = step;
  }

  dispose(): void {}
}

export interface AdamOptions {
  beta1: number;
  beta2: number;
  epsilon: number;
}

/** Adam (Kingma & Ba 2015, Algorithm 1) over variables identified by name. */
export class Adam implements Optimizer {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  /** Updates applied so far (t in the paper). */
  step = 0;

  constructor(private readonly options: AdamOptions = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8 }) {}

  private slot(map: Map<string, tf.Variable>, name: string, like: tf.Tensor): tf.Variable {
    let s = map.get(name);
    if (!s) {
      s = tf.tidy(() => tf.variable(tf.zerosLike(like), false));
      map.set(name, s);
    }
    return s;
  }

  /**
   * One update: m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
   * θ ← θ − lr · m̂ / (√v̂ + ε) with m̂ = m / (1−β1^t), v̂ = v / (1−β2^t). Every gradient is
   * first multiplied by `gradScale` when it is not 1 (clipping: `clipScale`).
   */
  apply(variables: Record<string, tf.Variable>, grads: tf.NamedTensorMap, learningRate: number, gradScale = 1): void {
    const { beta1, beta2, epsilon } = this.options;
    this.step += 1;
    const c1 = 1 - Math.pow(beta1, this.step);
    const c2 = 1 - Math.pow(beta2, this.step);
    const slots = Object.entries(grads).map(([name, grad]) => {
      const variable = variables[name];
      if (!variable) throw new Error(`Adam: gradient for unknown variable ${name}`);
      return { variable, m: this.slot(this.m, name, variable), v: this.slot(this.v, name, variable), grad };
    });
    if (fusedAdamUpdate(slots, { gradScale, beta1, beta2, epsilon, c1, c2, learningRate })) return;
    for (const { variable, m, v, grad } of slots) {
      tf.tidy(() => {
        const g = gradScale === 1 ? grad : tf.mul(grad, gradScale);
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        const update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), epsilon));
        variable.assign(tf.sub(variable, tf.mul(update, learningRate)));
      });
    }
  }

  /** The state as named tensors (`m/<name>`, `v/<name>`), for checkpoints; `step` is saved separately. */
  stateTensors(): tf.NamedTensorMap {
    const out: tf.NamedTensorMap = {};
    for (const [n, t] of this.m) out[`m/${n}`] = t;
    for (const [n, t] of this.v) out[`v/${n}`] = t;
    return out;
  }

  /** Restores moments saved by stateTensors (copies them) and the step count. */
  restore(state: tf.NamedTensorMap, step: number): void {
    this.dispose();
    for (const [key, t] of Object.entries(state)) {
      const [kind, ...rest] = key.split('/');
      const map = kind === 'm' ? this.m : kind === 'v' ? this.v : null;
      if (!map) throw new Error(`optimizer state: unexpected entry ${key}`);
      map.set(rest.join('/'), tf.variable(t, false));
    }
    this.step = step;
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
