/**
 * `node --import tsx bench/encoder-kernels.ts`: a microbenchmark of the native kernels of the
 * standard configuration's encoder (configs/std.json: four 3×3 conv + ReLU + 2×2 max-pool
 * blocks, batch 32), called on the addon directly, each block's forward (convolution with bias
 * and ReLU, then pooling) and backward (pooling/ReLU/bias gradient, input and filter gradients)
 * apart: wall-clock and process CPU milliseconds, medians of `--reps` runs.
 *
 *   node --import tsx bench/encoder-kernels.ts                     # this build
 *   node --import tsx bench/encoder-kernels.ts --against OTHER.node  # and another build, alternated
 *
 * With `--against` the other addon (say main's native/build/Release/captioner_native.node) runs
 * in the same process, alternated with this one run by run, so that both see the same load: the
 * way to judge a kernel change on a machine other jobs share. The other build is given 2 threads
 * for its runs and 1 between them (a build that still threads OpenBLAS sets its threads there),
 * and this build its own thread count before each of its runs.
 * A build from before the pooled forward pass (no `convReluMaxPool`) runs the block as it did:
 * the convolution with bias and ReLU, then MaxPool, and the gradient from relu(conv + bias).
 */
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from '../model/runtime/kernels/addon.ts';
import { convGeometry } from '../model/runtime/kernels/common.ts';
import { poolInfo } from '../model/runtime/kernels/pooling.ts';
import { loadNativeAddon } from '../model/runtime/native.ts';
import { readStdConfig } from './std-config.ts';

const PARTS = ['forward', 'poolReluBiasGrad', 'inputGrad', 'filterGrad'] as const;
type Part = (typeof PARTS)[number];
const RELU = 1; // native/ops.json's activation code of relu

interface Block {
  label: string;
  inChannels: number;
  outChannels: number;
  x: Float32Array;
  filter: Float32Array;
  bias: Float32Array;
  /** A stand-in for relu(conv + bias) and for the gradient reaching it. */
  y: Float32Array;
  dpooled: Float32Array;
  /** A stand-in for the pooled values' positions in their windows (−1: not positive). */
  argmax: Int32Array;
  conv: ReturnType<typeof convGeometry>;
  pool: ReturnType<typeof convGeometry>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function uniform(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}

function blocks(batch: number, imageSize: number, channels: number[]): Block[] {
  let size = imageSize;
  let inChannels = 3;
  return channels.map((outChannels, i) => {
    const conv = tf.backend_util.computeConv2DInfo(
      [batch, size, size, inChannels],
      [3, 3, inChannels, outChannels],
      1,
      1,
      'same',
    );
    const pool = poolInfo(conv.outShape, { filterSize: 2, strides: 2, pad: 'same' });
    const outSize = batch * size * size * outChannels;
    const block: Block = {
      label: `${size}×${size}×${inChannels} → ${outChannels}`,
      inChannels,
      outChannels,
      x: uniform(batch * size * size * inChannels, 1 + i),
      filter: uniform(9 * inChannels * outChannels, 11 + i),
      bias: uniform(outChannels, 21 + i),
      y: uniform(outSize, 31 + i).map((v) => Math.max(v, 0)),
      dpooled: uniform(outSize / 4, 41 + i),
      argmax: Int32Array.from(uniform(outSize / 4, 51 + i), (v) => Math.floor((v + 0.5) * 5) - 1), // -1 … 3
      conv: convGeometry(conv),
      pool: convGeometry(pool),
    };
    size = pool.outHeight;
    inChannels = outChannels;
    return block;
  });
}

/** The addon of a build from before `convReluMaxPool`: the block's forward and gradient as they were. */
interface EarlierAddon {
  maxPoolReluBiasGrad(dp: Float32Array, y: Float32Array, dpre: Float32Array, dbias: Float32Array, g: unknown): void;
}

/** One part of a block on `lib`, outputs allocated as the kernels do (fresh, zeroed). */
function run(lib: NativeAddon, b: Block, part: Part): void {
  const pooled = lib.convReluMaxPool !== undefined;
  if (part === 'forward') {
    if (pooled) {
      const out = new Float32Array(b.dpooled.length);
      lib.convReluMaxPool(b.x, b.filter, b.bias, out, new Int32Array(out.length), b.conv, b.pool);
      return;
    }
    const y = new Float32Array(b.y.length);
    lib.conv2d(b.x, b.filter, y, b.conv, b.bias, b.outChannels, RELU, 0);
    lib.maxPool(y, new Float32Array(b.dpooled.length), b.pool);
  } else if (part === 'poolReluBiasGrad') {
    const da = new Float32Array(b.y.length);
    const dbias = new Float32Array(b.outChannels);
    if (pooled) lib.maxPoolArgmaxGrad(b.dpooled, b.argmax, da, dbias, b.pool);
    else (lib as unknown as EarlierAddon).maxPoolReluBiasGrad(b.dpooled, b.y, da, dbias, b.pool);
  } else if (part === 'inputGrad') {
    if (b.inChannels !== 3) lib.conv2dBackpropInput(b.y, b.filter, new Float32Array(b.x.length), b.conv);
  } else {
    lib.conv2dBackpropFilter(b.x, b.y, new Float32Array(b.filter.length), b.conv);
  }
}

/** Median wall and CPU ms of `part` on each build, alternated run by run. */
function measure(builds: { lib: NativeAddon; before?: () => void }[], b: Block, part: Part, reps: number) {
  const wall = builds.map(() => [] as number[]);
  const cpu = builds.map(() => [] as number[]);
  for (let r = 0; r <= reps; r++) {
    builds.forEach(({ lib, before }, i) => {
      before?.();
      const c = process.cpuUsage();
      const t = performance.now();
      run(lib, b, part);
      const ms = performance.now() - t;
      const used = process.cpuUsage(c);
      if (r === 0) return; // warm-up
      wall[i]!.push(ms);
      cpu[i]!.push((used.user + used.system) / 1000);
    });
  }
  return builds.map((_, i) => ({ wall: median(wall[i]!), cpu: median(cpu[i]!) }));
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      against: { type: 'string' },
      reps: { type: 'string', default: '7' },
      batch: { type: 'string' },
    },
  });
  const lib = loadNativeAddon();
  if (typeof lib === 'string') throw new Error(`this build's addon: ${lib}`);
  const { train, model } = await readStdConfig();
  const batch = Number(args.batch ?? train.batchSize);
  const reps = Number(args.reps);
  const builds: { name: string; lib: NativeAddon; before?: () => void }[] = [{ name: 'this build', lib }];
  if (args.against) {
    const other = createRequire(import.meta.url)(args.against) as NativeAddon;
    // Two builds of the addon share their thread count and thread pool (C++ inline variables
    // and static locals are process-wide: GNU unique symbols), so this build sets its own
    // threads back after the other build's are set to 1.
    const threads = lib.info().threads;
    builds.unshift({ name: args.against, lib: other, before: () => other.setThreads(2) });
    builds[1]!.before = () => {
      other.setThreads(1);
      lib.setThreads(threads);
    };
  }
  process.stdout.write(
    `encoder kernels, batch ${batch}, wall/CPU ms (medians of ${reps}); load average ${(await import('node:os'))
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}\n`,
  );
  builds.forEach(({ name }, i) => process.stdout.write(`  [${i}] ${name}\n`));
  const totals = builds.map(() => ({ wall: 0, cpu: 0 }));
  for (const b of blocks(batch, model.imageSize, model.encoderChannels)) {
    const cells: string[] = [];
    for (const part of PARTS) {
      const m = measure(builds, b, part, reps);
      m.forEach((v, i) => {
        totals[i]!.wall += v.wall;
        totals[i]!.cpu += v.cpu;
      });
      cells.push(`${part} ${m.map((v) => `${v.wall.toFixed(1)}/${v.cpu.toFixed(1)}`).join(' → ')}`);
    }
    process.stdout.write(`${b.label.padEnd(16)} ${cells.join('  ')}\n`);
  }
  process.stdout.write(
    `total ${totals.map((t, i) => `[${i}] ${t.wall.toFixed(1)} ms wall, ${t.cpu.toFixed(1)} ms CPU`).join('; ')}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`encoder-kernels: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
