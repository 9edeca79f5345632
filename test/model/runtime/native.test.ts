/**
 * The native kernels (model/runtime/native.ts, native/src/kernels.cc) against the JavaScript kernels
 * they replace: each case runs once on the JS kernels and once on the native ones and compares
 * (max |native − js| ≤ 1e-4 · max |js|). Every elementwise op of native/ops.json is compared,
 * and the addon must report the op table it was built from as that file's. The addon must be
 * built: these tests fail, not skip, when it is not (CI installs libopenblas-dev before npm ci).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import {
  disableNativeKernels,
  enableNativeKernels,
  loadNativeAddon,
  nativeAddonPath,
  nativeCallCounts,
} from '../../../model/runtime/native.ts';
import { convGeometry } from '../../../model/runtime/kernels/common.ts';
import { OP_TABLE, opTableMismatch, type NativeAddon } from '../../../model/runtime/kernels/addon.ts';
import { binaryPlan } from '../../../model/runtime/kernels/binary.ts';
import {
  assertCaptionerGradientsMatch,
  assertClose,
  assertServedNatively,
  onBoth,
  rand,
} from '../../helpers/native-compare.ts';

describe('native kernels', () => {
  before(async () => {
    await tf.setBackend('cpu');
    const addon = loadNativeAddon();
    assert.equal(typeof addon, 'object', `the native addon must be built for these tests: ${String(addon)}`);
  });
  after(() => disableNativeKernels());

  test('BatchMatMul: transposes, odd sizes, batches and broadcasting', () => {
    for (const [ta, tb] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      const a = rand(ta ? [13, 7] : [7, 13]);
      const b = rand(tb ? [5, 13] : [13, 5]);
      assertClose(() => tf.matMul(a, b, ta, tb), `2-D ta=${ta} tb=${tb}`);
      const a3 = rand(ta ? [3, 13, 7] : [3, 7, 13]);
      const b3 = rand(tb ? [3, 5, 13] : [3, 13, 5]);
      assertClose(() => tf.matMul(a3, b3, ta, tb), `batched ta=${ta} tb=${tb}`);
      assertClose(() => tf.matMul(a3, b, ta, tb), `b broadcast ta=${ta} tb=${tb}`);
      assertClose(() => tf.matMul(a, b3, ta, tb), `a broadcast ta=${ta} tb=${tb}`);
    }
    for (const [ta, tb] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      // up to four rows: the matrix-vector path
      assertClose(
        () => tf.matMul(rand(ta ? [13, 1] : [1, 13]), rand(tb ? [5, 13] : [13, 5]), ta, tb),
        `row vector ta=${ta} tb=${tb}`,
      );
      assertClose(
        () => tf.matMul(rand(ta ? [3, 13, 1] : [3, 1, 13]), rand(tb ? [5, 13] : [13, 5]), ta, tb),
        `batched row vectors ta=${ta} tb=${tb}`,
      );
      assertClose(
        () => tf.matMul(rand(ta ? [13, 3] : [3, 13]), rand(tb ? [5, 13] : [13, 5]), ta, tb),
        `three rows ta=${ta} tb=${tb}`,
      );
      assertClose(
        () => tf.matMul(rand(ta ? [2, 13, 4] : [2, 4, 13]), rand(tb ? [2, 5, 13] : [2, 13, 5]), ta, tb),
        `batched four rows ta=${ta} tb=${tb}`,
      );
    }
    assertClose(() => tf.matMul(rand([2, 3, 4, 6]), rand([2, 3, 6, 5])), 'rank 4');
    assertClose(() => tf.matMul(rand([1, 3, 4, 6]), rand([2, 1, 6, 5])), 'two-sided broadcast (JS fallback)');
    assertClose(() => tf.matMul(rand([64, 300]), rand([300, 129])), 'larger');
    assertServedNatively('BatchMatMul');
  });

  test('BatchMatMul of a few rows (a decoding step): 1 to 9 rows, column tails, split between threads', () => {
    // Up to 8 rows read b once for all of them (native/src/rows.cc), in groups of up to 4 rows,
    // strips of 8 columns and single columns at the end; 9 rows take the GEMM.
    for (let m = 1; m <= 9; m++)
      for (const n of [5, 8, 37, 1030])
        assertClose(() => tf.matMul(rand([m, 19]), rand([19, n])), `${m} rows, ${n} columns`);
    assertClose(() => tf.matMul(rand([2, 3, 40]), rand([2, 40, 21])), 'batched, 3 rows each');
    assertServedNatively('BatchMatMul');
    // Above 2^22 multiply-adds the columns are split between threads; each column is one
    // thread's sum, so one thread and two give the same numbers to the bit.
    const lib = loadNativeAddon() as NativeAddon;
    const [m, n, k] = [6, 1100, 700];
    const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i * 0.37));
    const product = (threads: number) => {
      lib.setThreads(threads);
      const c = new Float32Array(m * n);
      lib.batchMatMul(a, b, c, 1, 1, 1, m, n, k, false, false);
      return c;
    };
    const threads = lib.info().threads;
    try {
      assert.deepEqual(product(2), product(1));
    } finally {
      lib.setThreads(threads);
    }
    assertClose(
      () => tf.matMul(tf.tensor2d(a, [m, k]), tf.tensor2d(b, [k, n])),
      `${m} rows, ${n} columns, ${k} deep (split between threads)`,
    );
  });

  test('TopK: the k best of each row, largest first, ties by smaller index; NaN and unsorted go to JavaScript', () => {
    const same = (fn: () => tf.Tensor[], label: string) => {
      const { js, native } = onBoth(fn);
      js.forEach((ref, i) => assert.deepEqual(native[i], ref, `${label} [output ${i}]`));
    };
    same(() => {
      const { values, indices } = tf.topk(rand([3, 1000], 5), 6);
      return [values, indices];
    }, 'a beam step: 6 of 1000');
    same(() => {
      const { values, indices } = tf.topk(rand([2, 3, 17]), 17);
      return [values, indices];
    }, 'every value, rank 3');
    const ties = tf.tensor2d([
      [1, 3, 3, 2, 3, 1, -Infinity, Infinity],
      [0, 0, 0, 0, 0, 0, 0, 0],
    ]);
    same(() => {
      const { values, indices } = tf.topk(ties, 4);
      return [values, indices];
    }, 'ties and infinities');
    assertServedNatively('TopK');
    // A NaN, and unsorted top-k, are the JavaScript kernel's: the same numbers, not served natively.
    const nan = tf.tensor2d([[1, NaN, 3, 2]]);
    same(() => {
      const { values, indices } = tf.topk(nan, 2);
      return [values, indices];
    }, 'NaN');
    same(() => [tf.topk(rand([2, 50]), 5, false).values], 'unsorted');
    assert.equal(nativeCallCounts(true).TopK, undefined, 'NaN and unsorted top-k ran natively');
    tf.dispose([ties, nan]);
  });

  test('ArgMax over the last axis: the first of equal values, NaN never the largest; other axes go to JavaScript', () => {
    const { js, native } = onBoth(() => [
      tf.argMax(rand([32, 1000], 5), 1),
      tf.argMax(
        tf.tensor3d(
          [
            [
              [1, 3, 3, 2],
              [NaN, 1, 2, 0],
            ],
            [
              [2, NaN, 5, 5],
              [-Infinity, -Infinity, -Infinity, -Infinity],
            ],
          ],
          [2, 2, 4],
        ),
        -1,
      ),
    ]);
    js.forEach((ref, i) => assert.deepEqual(native[i], ref, `argMax [output ${i}]`));
    assertServedNatively('ArgMax');
    assertClose(() => tf.argMax(rand([6, 4]), 0), 'along the first axis');
    assert.equal(nativeCallCounts(true).ArgMax, undefined, 'argMax along the first axis ran natively');
  });

  test('Softmax over the last axis: the same numbers as the JavaScript kernel, and its gradient', () => {
    const { js, native } = onBoth(() => [
      tf.softmax(rand([3, 1000], 8)),
      tf.softmax(tf.concat([rand([2, 4, 5], 3), tf.fill([2, 4, 2], -Infinity)], 2)),
    ]);
    js.forEach((ref, i) => assert.deepEqual(native[i], ref, `softmax [output ${i}]`));
    const probe = rand([5, 30]);
    assertClose(() => tf.grad((x) => tf.sum(tf.mul(tf.softmax(x), probe)))(rand([5, 30], 4)), 'softmax gradient');
    assertServedNatively('Softmax');
    probe.dispose();
  });

  test('_FusedMatMul: bias and activations, PReLU falls back', () => {
    const a = rand([6, 9]);
    const b = rand([9, 11]);
    const bias = rand([11]);
    // Every activation of native/ops.json, and one it lacks (elu, computed by JavaScript).
    for (const activation of [...OP_TABLE.activation, 'elu'] as tf.fused.Activation[]) {
      assertClose(() => tf.fused.matMul({ a, b, bias, activation, leakyreluAlpha: 0.1 }), `fused ${activation}`);
    }
    assertClose(() => tf.fused.matMul({ a, b, bias: tf.scalar(0.5), activation: 'relu' }), 'scalar bias');
    assertClose(() => tf.fused.matMul({ a, b: rand([11, 9]), transposeB: true, bias }), 'transposed b, no activation');
    assertClose(() => tf.fused.matMul({ a, b, activation: 'prelu', preluActivationWeights: rand([11]) }), 'prelu');
    assertServedNatively('_FusedMatMul');
  });

  test('Conv2D and FusedConv2D: strides 1 and 2, same/valid/explicit padding, dilation, 1x1', () => {
    const x = rand([2, 9, 11, 3]);
    for (const filterShape of [
      [3, 3, 3, 4],
      [3, 2, 3, 5],
      [1, 1, 3, 6],
      [5, 5, 3, 2],
      [3, 3, 3, 48], // AVX-512 tiles where the CPU has them: strips of 32 and 16 columns
    ] as [number, number, number, number][]) {
      const w = rand(filterShape);
      for (const stride of [1, 2]) {
        for (const pad of ['same', 'valid', 1] as const) {
          assertClose(
            () => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, pad),
            `conv ${filterShape} s${stride} ${pad}`,
          );
        }
      }
      assertClose(
        () => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same', 'NHWC', 2),
        `conv ${filterShape} dilation 2`,
      );
    }
    const w = rand([3, 3, 3, 4]);
    const bias = rand([4]);
    for (const activation of ['linear', 'relu', 'sigmoid'] as const) {
      assertClose(
        () =>
          tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w as tf.Tensor4D, strides: 2, pad: 'same', bias, activation }),
        `fused conv ${activation}`,
      );
    }
    assertServedNatively('Conv2D', 'FusedConv2D');
  });

  test('Conv2DBackpropInput and Conv2DBackpropFilter through gradients', () => {
    for (const [xShape, wShape, stride, pad] of [
      [[2, 9, 11, 3], [3, 3, 3, 4], 1, 'same'],
      [[2, 9, 11, 3], [3, 3, 3, 4], 2, 'same'],
      [[3, 8, 7, 5], [3, 2, 5, 6], 2, 'valid'],
      [[2, 6, 6, 4], [1, 1, 4, 3], 1, 'valid'],
      [[1, 10, 10, 2], [5, 5, 2, 3], 2, 'same'],
      // Output channels a multiple of 16 (AVX-512 tiles where the CPU has them, tiles.cc): 48 is a
      // strip of 32 columns and one of 16, 126 rows ten blocks of 12 and 6; 16 channels of 8 inputs
      // (K = 72) take AVX-512 for the filter's gradient only.
      [[2, 7, 9, 16], [3, 3, 16, 48], 1, 'same'],
      [[3, 5, 5, 8], [3, 3, 8, 16], 2, 'same'],
    ] as [number[], number[], number, 'same' | 'valid'][]) {
      const x = rand(xShape);
      const w = rand(wShape);
      const probe = rand(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, pad).shape);
      const g = tf.grads((xx: tf.Tensor, ww: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, stride, pad), probe)),
      );
      assertClose(() => g([x, w]), `conv grads x${xShape} w${wShape} s${stride} ${pad}`);
      assertClose(
        () =>
          tf.conv2dTranspose(
            probe as tf.Tensor4D,
            w as tf.Tensor4D,
            xShape as [number, number, number, number],
            stride,
            pad,
          ),
        'conv2dTranspose',
      );
    }
    assertServedNatively('Conv2DBackpropInput', 'Conv2DBackpropFilter');
  });

  test('MaxPool and MaxPoolGrad: overlapping and edge windows, ties', () => {
    const x = rand([2, 9, 7, 3]);
    const ties = tf.tensor4d(
      Array.from({ length: 2 * 6 * 6 * 2 }, (_, i) => Math.floor(i / 7) % 3),
      [2, 6, 6, 2],
    );
    for (const input of [x, ties]) {
      for (const [filter, stride, pad] of [
        [2, 2, 'same'],
        [3, 1, 'same'],
        [3, 2, 'valid'],
        [2, 1, 'valid'],
      ] as [number, number, 'same' | 'valid'][]) {
        assertClose(
          () => tf.maxPool(input as tf.Tensor4D, filter, stride, pad),
          `maxPool f${filter} s${stride} ${pad}`,
        );
        const g = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(xx as tf.Tensor4D, filter, stride, pad), 1.5)));
        assertClose(() => g(input), `maxPoolGrad f${filter} s${stride} ${pad}`);
      }
    }
    assertServedNatively('MaxPool', 'MaxPoolGrad');
  });

  test('UnsortedSegmentSum, the gather gradient, and GatherV2', () => {
    const x = rand([10, 3, 4]);
    const ids = tf.tensor1d([0, 2, 2, 5, 1, 0, 5, 5, 3, 2], 'int32');
    assertClose(() => tf.unsortedSegmentSum(x, ids, 7), 'segment sum');
    const table = rand([12, 5]);
    const idx = tf.tensor1d([3, 3, 0, 11, 7, 3], 'int32');
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, idx), rand([6, 5]))));
    assertClose(() => g(table), 'gather gradient');
    assertServedNatively('UnsortedSegmentSum');
    // GatherV2: rows of an embedding by a [batch, steps] id matrix, along a middle axis, int32 values
    const idMatrix = tf.tensor2d([3, 0, 11, 3, 7, 7], [2, 3], 'int32');
    assertClose(() => tf.gather(table, idMatrix), 'gather rows by an id matrix');
    assertClose(() => tf.gather(rand([2, 12, 3]), tf.tensor1d([5, 0, 11], 'int32'), 1), 'gather along axis 1');
    assertClose(() => tf.gather(tf.range(0, 24, 1, 'int32').reshape([12, 2]), idx).toFloat(), 'gather int32');
    // batchDims 1: each row its own indices (a decoding step's chosen word per row), and deeper
    const perRow = tf.tensor2d([4, 0, 2, 2, 4, 1], [3, 2], 'int32');
    assertClose(() => tf.gather(rand([3, 5]), perRow, 1, 1), 'gather with batchDims 1');
    assertClose(() => tf.gather(rand([3, 2, 5, 4]), perRow, 2, 1), 'gather with batchDims 1 along axis 2');
    assertClose(
      () => tf.gather(rand([3, 2, 5]), tf.tensor3d([1, 4, 0, 0, 3, 3], [3, 2, 1], 'int32'), 2, 2),
      'gather with batchDims 2',
    );
    assertServedNatively('GatherV2');
    // An index outside the axis is the JavaScript kernel's, which says so.
    assert.throws(() => tf.gather(table, tf.tensor1d([12], 'int32')).dataSync());
  });

  test('elementwise ops with each broadcast form', () => {
    const shapes: [number[], number[]][] = [
      [
        [4, 5, 6],
        [4, 5, 6],
      ],
      [[4, 5, 6], []],
      [[], [4, 5, 6]],
      [[4, 5, 6], [6]],
      [[6], [4, 5, 6]],
      [
        [4, 5, 6],
        [5, 6],
      ],
      [
        [4, 5, 6],
        [4, 5, 1],
      ],
      [
        [4, 1, 1],
        [4, 5, 6],
      ],
      [
        [4, 1, 6],
        [4, 5, 6],
      ],
      [
        [4, 5, 1],
        [1, 5, 6],
      ],
      [
        [4, 1, 1, 6],
        [4, 3, 5, 6],
      ],
      [
        [4, 3, 5, 6],
        [4, 1, 5, 1],
      ],
    ];
    for (const [sa, sb] of shapes) {
      const a = rand(sa);
      const b = tf.add(rand(sb), 2); // keep divisors away from 0
      assertClose(
        () => [tf.add(a, b), tf.sub(a, b), tf.mul(a, b), tf.div(a, b)],
        `binary ${JSON.stringify(sa)} ${JSON.stringify(sb)}`,
      );
    }
    assertClose(
      () => tf.add(tf.tensor1d([1, 2], 'int32'), tf.tensor1d([3, 4], 'int32')).toFloat(),
      'int32 add (JS fallback)',
    );
    const x = tf.tensor1d([-2, -0.5, 0, 0.5, 3, NaN]);
    assertClose(() => [tf.relu(x), tf.step(x), tf.step(x, 0.3)], 'relu and step');
    const u = rand([7, 300], 4);
    assertClose(
      () => [tf.tanh(u), tf.sigmoid(u), tf.exp(u), tf.sqrt(tf.abs(u)), tf.square(u), tf.neg(u), tf.log(tf.abs(u))],
      'unary',
    );
    assert.equal(binaryPlan([4, 3, 5, 6], [4, 1, 5, 1]), null); // two broadcast blocks stay in JS
    assert.equal(binaryPlan([4, 1, 1, 6], [4, 3, 5, 6])?.mode, 'middle');
    assertServedNatively(
      'Add',
      'Sub',
      'Multiply',
      'RealDiv',
      'Relu',
      'Step',
      'Tanh',
      'Sigmoid',
      'Exp',
      'Sqrt',
      'Square',
      'Neg',
      'Log',
    );
  });

  test('Sum, Transpose, SplitV, Unpack, Concat, Pack', () => {
    const x = rand([3, 4, 5, 6]);
    for (const axis of [undefined, 0, 1, 3, [0, 1, 2], [1, 2], [2, 3], [0, 2], -1]) {
      assertClose(
        () => [tf.sum(x, axis), tf.sum(x, axis, true), tf.mean(x, axis), tf.mean(x, axis, true)],
        `sum/mean ${JSON.stringify(axis)}`,
      );
    }
    assertClose(() => tf.sum(rand([70000, 3]), 0), 'long reduction');
    for (const perm of [
      [0, 1, 2, 3],
      [0, 1, 3, 2],
      [3, 2, 1, 0],
    ])
      assertClose(() => tf.transpose(x, perm), `transpose ${perm}`);
    assertClose(() => tf.transpose(rand([33, 70])), 'transpose 2-D');
    assertClose(() => tf.split(x, 2, 1), 'split even');
    assertClose(() => tf.split(x, [1, 3, 2], 3), 'split sizes');
    assertClose(() => tf.unstack(x, 2), 'unstack');
    assertClose(
      () =>
        tf
          .unstack(
            tf.tensor2d(
              [
                [1, 2, 3],
                [4, 5, 6],
              ],
              [2, 3],
              'int32',
            ),
            1,
          )
          .map((t) => t.toFloat()),
      'unstack int32',
    );
    assertClose(() => tf.concat([x, rand([3, 2, 5, 6])], 1), 'concat');
    assertClose(() => tf.stack([rand([4, 5]), rand([4, 5]), rand([4, 5])], 1), 'stack');
    assertServedNatively('Sum', 'Mean', 'Transpose', 'SplitV', 'Unpack', 'Concat', 'Pack');
  });

  test('inputs large enough to be split across threads', () => {
    const x = rand([4, 40, 40, 8]);
    const w = rand([3, 3, 8, 16]);
    const probe = rand([4, 40, 40, 16]);
    const g = tf.grads((xx: tf.Tensor, ww: tf.Tensor) =>
      tf.sum(tf.mul(tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, 1, 'same'), probe)),
    );
    assertClose(
      () => [tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'), ...g([x, w])],
      'large conv and gradients',
    );
    const a = rand([300, 400]);
    const b = tf.add(rand([300, 400]), 3);
    for (const other of [b, tf.add(rand([400]), 3), tf.add(rand([300, 1]), 3), tf.scalar(1.5)]) {
      assertClose(
        () => [tf.add(a, other), tf.sub(other, a), tf.mul(a, other), tf.div(a, other)],
        `large binary with ${other.shape}`,
      );
    }
    assertClose(
      () => [tf.relu(a), tf.sigmoid(a), tf.sum(a, 0), tf.sum(a, 1), tf.transpose(a)],
      'large unary, sum, transpose',
    );
    assertClose(() => tf.matMul(rand([256, 300]), rand([300, 260])), 'large matMul');
    // Products above 2^24 multiply-adds are split across threads: along m when m ≥ n (here with
    // a transposed a), else along n (here with a transposed b).
    for (const [m, n, ta, tb] of [
      [400, 330, true, false],
      [330, 400, false, true],
    ] as const) {
      const a = rand(ta ? [130, m] : [m, 130]);
      const b = rand(tb ? [n, 130] : [130, n]);
      assertClose(() => tf.matMul(a, b, ta, tb), `large matMul ${m}x${n} ta=${ta} tb=${tb}`);
      tf.dispose([a, b]);
    }
    assertServedNatively(
      'Conv2D',
      'Conv2DBackpropInput',
      'Conv2DBackpropFilter',
      'Add',
      'Sub',
      'Multiply',
      'RealDiv',
      'Sum',
      'BatchMatMul',
    );
  });

  test('a worker thread and the main thread calling the addon at once get the results each gets alone', async () => {
    // One job at a time runs on the addon's threads; a call made meanwhile runs on its own
    // thread, over the same tiles, so its results are the same to the bit.
    const lib = loadNativeAddon() as NativeAddon;
    const inputs = {
      x: Float32Array.from({ length: 8 * 24 * 24 * 16 }, (_, i) => Math.sin(i)),
      w: Float32Array.from({ length: 3 * 3 * 16 * 32 }, (_, i) => Math.cos(i)),
      a: Float32Array.from({ length: 300 * 256 }, (_, i) => Math.sin(i * 0.7)),
      b: Float32Array.from({ length: 256 * 280 }, (_, i) => Math.cos(i * 0.3)),
    };
    const geometry = tf.backend_util.computeConv2DInfo([8, 24, 24, 16], [3, 3, 16, 32], 1, 1, 'same');
    const g = convGeometry(geometry);
    const compute = (l: NativeAddon) => {
      const y = new Float32Array(8 * 24 * 24 * 32);
      l.conv2d(inputs.x, inputs.w, y, g);
      const dw = new Float32Array(inputs.w.length);
      l.conv2dBackpropFilter(inputs.x, y, dw, g);
      const dx = new Float32Array(inputs.x.length);
      l.conv2dBackpropInput(y, inputs.w, dx, g);
      const c = new Float32Array(300 * 280);
      l.batchMatMul(inputs.a, inputs.b, c, 1, 1, 1, 300, 280, 256, false, false);
      return [y, dw, dx, c];
    };
    const alone = compute(lib);
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const lib = require(workerData.addon);
       const { x, w, a, b, g, rounds } = workerData;
       const out = [];
       for (let r = 0; r < rounds; r++) {
         const y = new Float32Array(8 * 24 * 24 * 32);
         lib.conv2d(x, w, y, g);
         const dw = new Float32Array(w.length);
         lib.conv2dBackpropFilter(x, y, dw, g);
         const dx = new Float32Array(x.length);
         lib.conv2dBackpropInput(y, w, dx, g);
         const c = new Float32Array(300 * 280);
         lib.batchMatMul(a, b, c, 1, 1, 1, 300, 280, 256, false, false);
         out.push([y, dw, dx, c]);
       }
       parentPort.postMessage(out);`,
      { eval: true, workerData: { ...inputs, g, rounds: 6, addon: nativeAddonPath() } },
    );
    const fromWorker = new Promise<Float32Array[][]>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    const fromMain: Float32Array[][] = [];
    for (let r = 0; r < 6; r++) fromMain.push(compute(lib));
    const results = [...fromMain, ...(await fromWorker)];
    await worker.terminate();
    for (const [i, result] of results.entries())
      result.forEach((values, j) => assert.deepEqual(values, alone[j], `run ${i}, output ${j}`));
  });

  test('gradients of a small CNN + LSTM captioner are equal with and without native kernels', async () => {
    await assertCaptionerGradientsMatch({}, 0);
  });

  test('every unary and binary op of native/ops.json runs natively and equals its JavaScript kernel', () => {
    const x = tf.tensor1d([-3, -1.5, -0.25, 0, 0.25, 0.75, 2, 5, NaN]);
    for (const name of OP_TABLE.unary) {
      // Sqrt and Log of a negative are NaN on both sides; Step's alpha is its value at x ≤ 0.
      assertClose(() => tf.engine().runKernel(name, { x }, { alpha: 0.3 }) as tf.Tensor, `unary ${name}`);
      assertServedNatively(name);
    }
    const a = rand([3, 4, 5]);
    for (const name of OP_TABLE.binary) {
      for (const b of [tf.add(rand([3, 4, 5]), 2), tf.add(rand([5]), 2), tf.add(rand([3, 1, 1]), 2)]) {
        assertClose(() => tf.engine().runKernel(name, { a, b }) as tf.Tensor, `binary ${name} with ${b.shape}`);
        assertClose(() => tf.engine().runKernel(name, { a: b, b: a }) as tf.Tensor, `binary ${name}, ${b.shape} first`);
      }
      assertServedNatively(name);
    }
  });

  test("the addon was built from native/ops.json's table, and an addon built from another is refused", () => {
    const lib = loadNativeAddon() as NativeAddon;
    assert.deepEqual(lib.opTable?.(), OP_TABLE);
    assert.equal(opTableMismatch(lib.opTable?.()), null);
    // What loadNativeAddon says of a stale build: the first code that differs, by name.
    const swapped = { ...OP_TABLE, unary: ['Step', 'Relu', ...OP_TABLE.unary.slice(2)] };
    assert.equal(opTableMismatch(swapped), 'unary op 0 is "Step" in the addon and "Relu" in native/ops.json');
    assert.equal(
      opTableMismatch({ ...OP_TABLE, binary: OP_TABLE.binary.slice(0, -1) }),
      `binary op ${OP_TABLE.binary.length - 1} is nothing in the addon and "${OP_TABLE.binary.at(-1)}" in native/ops.json`,
    );
    assert.equal(opTableMismatch({ binary: OP_TABLE.binary }), 'the addon has no "unary" operations');
    assert.equal(opTableMismatch(undefined), 'the addon reports no operation table');
    // The addon checks the codes it is given too.
    const out = new Float32Array(2);
    assert.throws(() => lib.unary(OP_TABLE.unary.length, new Float32Array(2), out, 0), {
      name: 'RangeError',
      message: `unknown unary op code ${OP_TABLE.unary.length}`,
    });
    assert.throws(() => lib.binary(-1, out, out, out, 1, 2, 0, false, 1), /unknown binary op code -1/);
    // Every elementwise op of the table replaced its JavaScript kernel.
    const { kernels } = enableNativeKernels();
    for (const name of [...OP_TABLE.binary, ...OP_TABLE.unary]) assert.ok(kernels.includes(name), name);
  });

  test('kernels leak no tensors', () => {
    enableNativeKernels();
    const x = rand([2, 8, 8, 3]);
    const w = rand([3, 3, 3, 4]);
    const before = tf.memory().numTensors;
    const g = tf.grads((xx: tf.Tensor, ww: tf.Tensor) =>
      tf.sum(tf.maxPool(tf.relu(tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, 1, 'same')), 2, 2, 'same')),
    );
    tf.dispose(g([x, w]));
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([x, w]);
  });

  test('CAPTIONER_NATIVE=0 turns them off and says what it costs', () => {
    const out = execFileSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        "import('./model/runtime/native.ts').then((n) => console.log(n.describeNative(n.enableNativeKernels())))",
      ],
      { env: { ...process.env, CAPTIONER_NATIVE: '0' }, encoding: 'utf8' },
    );
    assert.match(
      out,
      /native kernels: off: turned off by CAPTIONER_NATIVE=0; the pure-JavaScript kernels train .* slower/,
    );
  });
});
