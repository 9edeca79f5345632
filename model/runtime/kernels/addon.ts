/**
 * The addon's interface (native/src/kernels.cc) and the operation codes it shares with
 * TypeScript. The codes are written once, in native/ops.json: an op's code is its position in
 * its group's list. native/build.mjs compiles them into the addon (native/generated/ops.h),
 * the addon reports the table it was built with (`opTable()`), and `opTableMismatch` tells
 * when that is not the table this code reads, so that a stale build is refused, never run.
 */
import OP_TABLE_JSON from '../../../native/ops.json' with { type: 'json' };

/** Geometry of a convolution or pooling window, from tf.backend_util.computeConv2DInfo (NHWC). */
export interface ConvGeometry {
  batch: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outHeight: number;
  outWidth: number;
  outChannels: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  padTop: number;
  padLeft: number;
  dilationHeight: number;
  dilationWidth: number;
}

/**
 * The addon's functions (native/src/kernels.cc); outputs arrive zeroed and are written in
 * place. `op`, `mode` and `activation` are codes of the table's binary, broadcast, unary and
 * activation groups (`opCode`).
 */
export interface NativeAddon {
  batchMatMul(
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    batch: number,
    batchA: number,
    batchB: number,
    m: number,
    n: number,
    k: number,
    transposeA: boolean,
    transposeB: boolean,
    bias?: Float32Array | null,
    biasSize?: number,
    activation?: number,
    alpha?: number,
  ): void;
  conv2d(
    x: Float32Array,
    filter: Float32Array,
    out: Float32Array,
    g: ConvGeometry,
    bias?: Float32Array | null,
    biasSize?: number,
    activation?: number,
    alpha?: number,
  ): void;
  conv2dBackpropInput(dy: Float32Array, filter: Float32Array, dx: Float32Array, g: ConvGeometry): void;
  conv2dBackpropFilter(x: Float32Array, dy: Float32Array, dw: Float32Array, g: ConvGeometry): void;
  unsortedSegmentSum(x: Float32Array, ids: Int32Array, out: Float32Array, inner: number, numSegments: number): void;
  maxPool(x: Float32Array, out: Float32Array, g: ConvGeometry): void;
  maxPoolGrad(dy: Float32Array, x: Float32Array, dx: Float32Array, g: ConvGeometry): void;
  binary(
    op: number,
    full: Float32Array,
    other: Float32Array,
    out: Float32Array,
    rows: number,
    cols: number,
    mode: number,
    swapped: boolean,
    mid: number,
  ): void;
  unary(op: number, x: Float32Array, out: Float32Array, alpha: number): void;
  sum(x: Float32Array, out: Float32Array, outer: number, reduce: number, inner: number): void;
  transpose2d(x: Float32Array, out: Float32Array, batch: number, rows: number, cols: number): void;
  /**
   * The k largest of each row of `vocab` values, largest first, ties by smaller index; false
   * (nothing written) when a row holds NaN.
   */
  topK(x: Float32Array, values: Float32Array, indices: Int32Array, vocab: number, k: number): boolean;
  /** The index of each row's largest value (the first of equal ones; NaN never the largest). */
  argMax(x: Float32Array, out: Int32Array, vocab: number): void;
  /** Softmax (or, with `log`, log-softmax) of each row of `vocab` values, rounded as TF.js's ops round. */
  softmaxRows(x: Float32Array, out: Float32Array, vocab: number, log: boolean): void;
  /**
   * maxPool(relu(conv(x) + bias)) for disjoint pooling windows (`pool`, the pooling of the
   * convolution's output), and where each pooled value came from in its window (ky · fw + kx), or
   * −1 where it is not positive (none written when `argmax` is empty).
   */
  convReluMaxPool(
    x: Float32Array,
    filter: Float32Array,
    bias: Float32Array,
    pooled: Float32Array,
    argmax: Int32Array,
    conv: ConvGeometry,
    pool: ConvGeometry,
  ): void;
  /** Each window's gradient to its argmax (none where −1), and the bias gradient (maxPool ∘ relu ∘ (+bias)). */
  maxPoolArgmaxGrad(
    dp: Float32Array,
    argmax: Int32Array,
    dpre: Float32Array,
    dbias: Float32Array,
    pool: ConvGeometry,
  ): void;
  /** Adam on every variable in place; constants as model/train/optim.ts's Adam uses them. */
  adam(
    variables: Float32Array[],
    m: Float32Array[],
    v: Float32Array[],
    grads: Float32Array[],
    scaled: boolean,
    gradScale: number,
    beta1: number,
    oneMinusBeta1: number,
    beta2: number,
    oneMinusBeta2: number,
    c1: number,
    c2: number,
    epsilon: number,
    learningRate: number,
  ): void;
  /** Σ over the arrays of Σ x², as Sum(Square) per array and AddN over them compute it. */
  sumOfSquares(arrays: Float32Array[]): number;
  lstmSequence(
    xw: Float32Array,
    h0: Float32Array,
    c0: Float32Array,
    recurrent: Float32Array,
    hs: Float32Array,
    cs: Float32Array,
    gates: Float32Array,
    batch: number,
    steps: number,
    hidden: number,
  ): void;
  lstmSequenceGrad(
    dhs: Float32Array,
    dcs: Float32Array,
    gates: Float32Array,
    cs: Float32Array,
    hs: Float32Array,
    h0: Float32Array,
    c0: Float32Array,
    recurrent: Float32Array,
    dxw: Float32Array,
    dh0: Float32Array,
    dc0: Float32Array,
    dRecurrent: Float32Array,
    batch: number,
    steps: number,
    hidden: number,
  ): void;
  gruSequence(
    xw: Float32Array,
    h0: Float32Array,
    recurrent: Float32Array,
    hs: Float32Array,
    gates: Float32Array,
    hn: Float32Array,
    batch: number,
    steps: number,
    hidden: number,
  ): void;
  gruSequenceGrad(
    dhs: Float32Array,
    gates: Float32Array,
    hn: Float32Array,
    hs: Float32Array,
    h0: Float32Array,
    recurrent: Float32Array,
    dxw: Float32Array,
    dh0: Float32Array,
    dRecurrent: Float32Array,
    batch: number,
    steps: number,
    hidden: number,
  ): void;
  /** The masked, label-smoothed softmax cross-entropy of rows of logits, times `scale`. */
  softmaxCrossEntropy(
    logits: Float32Array,
    targets: Int32Array,
    vocab: number,
    pad: number,
    labelSmoothing: number,
    scale: number,
  ): number;
  softmaxCrossEntropyGrad(
    logits: Float32Array,
    targets: Int32Array,
    dlogits: Float32Array,
    vocab: number,
    pad: number,
    labelSmoothing: number,
    scale: number,
  ): void;
  /** The addon's threads (its pool's workers and the caller); OpenBLAS stays at one thread inside them. */
  setThreads(n: number): void;
  /** `threads`: the addon's; `blasThreads`: OpenBLAS's own, 1 since the addon threads its products itself. */
  info(): { threads: number; blas: string; core?: string; blasThreads?: number };
  /** The operation table the addon was compiled with; absent from addons built before it existed. */
  opTable?(): unknown;
}

/** The groups of native/ops.json. */
export type OpGroup = 'binary' | 'unary' | 'activation' | 'broadcast';
export const OP_GROUPS: readonly OpGroup[] = ['binary', 'unary', 'activation', 'broadcast'];

/** native/ops.json's groups: each op's name, its code being its index. */
export const OP_TABLE: Readonly<Record<OpGroup, readonly string[]>> = {
  binary: OP_TABLE_JSON.binary,
  unary: OP_TABLE_JSON.unary,
  activation: OP_TABLE_JSON.activation,
  broadcast: OP_TABLE_JSON.broadcast,
};

/** The code of `name` in `group`, or null when the table does not have it. */
export function findOpCode(group: OpGroup, name: string): number | null {
  const code = OP_TABLE[group].indexOf(name);
  return code < 0 ? null : code;
}

/** The code of `name` in `group`; throws when native/ops.json does not list it. */
export function opCode(group: OpGroup, name: string): number {
  const code = findOpCode(group, name);
  if (code === null) throw new Error(`native/ops.json: no ${group} op "${name}"`);
  return code;
}

/**
 * How the table an addon reports (`opTable()`) differs from `expected` (native/ops.json), or
 * null when they are the same.
 */
export function opTableMismatch(
  reported: unknown,
  expected: Readonly<Record<OpGroup, readonly string[]>> = OP_TABLE,
): string | null {
  if (typeof reported !== 'object' || reported === null) return 'the addon reports no operation table';
  const table = reported as Partial<Record<OpGroup, unknown>>;
  for (const group of OP_GROUPS) {
    const got = table[group];
    const want = expected[group];
    if (!Array.isArray(got)) return `the addon has no "${group}" operations`;
    for (let code = 0; code < Math.max(got.length, want.length); code++) {
      if (got[code] !== want[code]) {
        const name = (n: unknown) => (n === undefined ? 'nothing' : JSON.stringify(n));
        return `${group} op ${code} is ${name(got[code])} in the addon and ${name(want[code])} in native/ops.json`;
      }
    }
  }
  return null;
}
