/**
 * Native kernels for the TF.js CPU backend. The pure-JavaScript CPU backend computes a matrix
 * product or a convolution in scalar loops (about 0.06 GFLOP/s for a training step); the
 * addon in native/ runs the same kernels as BLAS matrix products (convolutions through im2col,
 * Chellapilla et al. 2006) on the backend's own Float32Arrays, using every core.
 *
 * `enableNativeKernels` replaces the 'cpu' backend's kernels by name (tf.unregisterKernel +
 * tf.registerKernel) and keeps each JavaScript kernel to fall back to: any input or attribute
 * the native code does not handle (another dtype, NCHW, PReLU, an unusual broadcast) goes to
 * the JavaScript kernel, never to a wrong answer. Gradients need no change: TF.js builds them
 * from these same kernels (Conv2DBackpropFilter, UnsortedSegmentSum, MaxPoolGrad, …).
 *
 * The kernels live in ./kernels/ by family, as in tfjs-backend-cpu: matmul, conv, pooling,
 * binary, unary, reduction, data-movement. The operation codes they share with the addon are
 * written once, in native/ops.json (./kernels/addon.ts).
 *
 * Besides replacing TF.js's kernels, it registers captioner's own fused kernels, which TF.js
 * does not have (names starting "Captioner": an LSTM or GRU over a sequence, the encoder's
 * conv-ReLU-pool block, the softmax cross-entropy, each with its gradient kernel). The ops that
 * run them, and fall back to plain TF.js ops where they are not registered, are in ./fused.ts.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { opTableMismatch, type NativeAddon } from './kernels/addon.ts';
import { binaryKernels } from './kernels/binary.ts';
import type { KernelArgs, NativeKernel, NativeKernels } from './kernels/common.ts';
import { convKernels } from './kernels/conv.ts';
import { convBlockKernels } from './kernels/conv-block.ts';
import { lossKernels } from './kernels/loss.ts';
import { recurrentKernels } from './kernels/recurrent.ts';
import { dataMovementKernels } from './kernels/data-movement.ts';
import { matMulKernels } from './kernels/matmul.ts';
import { poolingKernels } from './kernels/pooling.ts';
import { reductionKernels } from './kernels/reduction.ts';
import { logSoftmaxKernels, softmaxKernels } from './kernels/softmax.ts';
import { unaryKernels } from './kernels/unary.ts';

export type { NativeAddon } from './kernels/addon.ts';

/** Whether native kernels are on, and why not when they are off. */
export interface NativeStatus {
  enabled: boolean;
  /** Kernels replaced, when enabled. */
  kernels: string[];
  /** The BLAS and threads in use, or why the native kernels are off. */
  detail: string;
}

/** The cost of running without the addon, measured with `npm run bench` (README "Performance"). */
export const PURE_JS_COST =
  'the pure-JavaScript kernels train the standard model at about 0.1 images/s, some 100x slower than the native ones (docs/performance.md)';

type JsKernel = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

const ADDON_PATH = join(dirname(fileURLToPath(import.meta.url)), '../../native/build/Release/captioner_native.node');

let addon: NativeAddon | null = null;
let status: NativeStatus | null = null;
/** The JavaScript kernels that native ones replaced, by kernel name. */
const replaced = new Map<string, tf.KernelConfig>();
/** captioner's own kernels registered, by kernel name (TF.js has no kernel of these names). */
const added = new Set<string>();
/** Calls the native code served (not handed to JavaScript), by kernel name. */
const nativeCalls = new Map<string, number>();

/** Where the built addon is (it may not exist). */
export function nativeAddonPath(): string {
  return ADDON_PATH;
}

/**
 * Loads the addon, or returns why it cannot be loaded: not built, not loadable, or built from
 * another operation table than native/ops.json (a stale build, whose codes would be wrong).
 */
export function loadNativeAddon(): NativeAddon | string {
  if (addon) return addon;
  if (!existsSync(ADDON_PATH))
    return 'the addon is not built (npm install builds it when a BLAS is installed: apt-get install libopenblas-dev pkg-config, then node native/build.mjs)';
  let loaded: NativeAddon;
  try {
    loaded = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
  } catch (err) {
    return `the addon does not load (${(err as Error).message.split('\n')[0]})`;
  }
  const mismatch = opTableMismatch(loaded.opTable?.());
  if (mismatch)
    return `the addon was built from another operation table (${mismatch}); rebuild it: node native/build.mjs`;
  addon = loaded;
  const threads = Number(process.env.CAPTIONER_THREADS);
  if (Number.isInteger(threads) && threads > 0) addon.setThreads(threads);
  return addon;
}

/** Every native kernel, by the TF.js kernel name it replaces, family by family. */
function nativeKernels(lib: NativeAddon): NativeKernels {
  return {
    ...matMulKernels(lib),
    ...convKernels(lib),
    ...poolingKernels(lib),
    ...binaryKernels(lib),
    ...unaryKernels(lib),
    ...reductionKernels(lib),
    ...dataMovementKernels(lib),
    ...softmaxKernels(lib),
  };
}

/** captioner's own fused kernels, by kernel name. */
function captionerKernels(lib: NativeAddon): NativeKernels {
  return { ...recurrentKernels(lib), ...convBlockKernels(lib), ...lossKernels(lib), ...logSoftmaxKernels(lib) };
}

/**
 * Registers `native` as the 'cpu' backend's kernel `name`, which TF.js does not have: there is
 * no JavaScript kernel to fall back to, so the ops that run it (./fused.ts) only call it with
 * inputs it takes, and it throws for any other.
 */
function addKernel(name: string, native: NativeKernel): void {
  if (tf.getKernel(name, 'cpu')) return;
  tf.registerKernel({
    kernelName: name,
    backendName: 'cpu',
    kernelFunc: ((args: KernelArgs) => {
      const result = native(args);
      if (!result) throw new Error(`${name}: the native kernel does not take these inputs`);
      nativeCalls.set(name, (nativeCalls.get(name) ?? 0) + 1);
      return result;
    }) as unknown as tf.KernelFunc,
  });
  added.add(name);
}

/**
 * Registers `native` as the 'cpu' backend's kernel `name`, falling back to the JavaScript kernel
 * it replaces whenever it returns null, and counting the calls it serves. A kernel this TF.js
 * does not have is skipped.
 */
function replaceKernel(name: string, native: NativeKernel): void {
  const js = tf.getKernel(name, 'cpu');
  if (!js) return;
  const jsKernel = js.kernelFunc as unknown as JsKernel;
  tf.unregisterKernel(name, 'cpu');
  tf.registerKernel({
    ...js,
    kernelFunc: ((args: KernelArgs) => {
      const result = native(args);
      if (!result) return jsKernel(args);
      nativeCalls.set(name, (nativeCalls.get(name) ?? 0) + 1);
      return result;
    }) as unknown as tf.KernelFunc,
  });
  replaced.set(name, js);
}

/**
 * Replaces the 'cpu' backend's hot kernels by native ones, when the addon is built and
 * CAPTIONER_NATIVE is not 0. Idempotent; returns whether they are on and why not.
 */
export function enableNativeKernels(): NativeStatus {
  if (status?.enabled) return status;
  if (process.env.CAPTIONER_NATIVE === '0') {
    status = { enabled: false, kernels: [], detail: `turned off by CAPTIONER_NATIVE=0; ${PURE_JS_COST}` };
    return status;
  }
  const lib = loadNativeAddon();
  if (typeof lib === 'string') {
    status = { enabled: false, kernels: [], detail: `${lib}; ${PURE_JS_COST}` };
    return status;
  }
  for (const [name, native] of Object.entries(nativeKernels(lib))) replaceKernel(name, native);
  for (const [name, native] of Object.entries(captionerKernels(lib))) addKernel(name, native);
  const info = lib.info();
  const blas = info.blas.split(' ').slice(0, 2).join(' ');
  status = {
    enabled: true,
    kernels: [...replaced.keys(), ...added],
    detail: `${blas}${info.core ? ` (${info.core})` : ''}, ${info.threads} threads`,
  };
  return status;
}

/** Puts the JavaScript kernels back and removes captioner's own (for comparisons and tests). */
export function disableNativeKernels(): void {
  for (const [name, js] of replaced) {
    tf.unregisterKernel(name, 'cpu');
    tf.registerKernel(js);
  }
  replaced.clear();
  for (const name of added) tf.unregisterKernel(name, 'cpu');
  added.clear();
  status = null;
}

/** How many calls each kernel served natively since the last reset (the rest fell back to JS). */
export function nativeCallCounts(reset = false): Record<string, number> {
  const counts = Object.fromEntries(nativeCalls);
  if (reset) nativeCalls.clear();
  return counts;
}

/** The addon while the native kernels are on (for the optimiser's update, which is no TF.js kernel), else null. */
export function activeNativeAddon(): NativeAddon | null {
  return status?.enabled ? addon : null;
}

/** The state after enableNativeKernels, or null before it. */
export function nativeStatus(): NativeStatus | null {
  return status;
}

/** One log line: whether native kernels are on and, if off, why and what it costs. */
export function describeNative(s: NativeStatus): string {
  return s.enabled
    ? `native kernels: on (${s.detail}; ${s.kernels.length} kernels)`
    : `native kernels: off: ${s.detail}`;
}
