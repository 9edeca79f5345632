/**
 * `npm run bench`: the standard benchmark configuration (configs/std.json, described in
 * docs/performance.md) on the active backend: train images/s, greedy batch-1 latency,
 * greedy batch-32 captions/s, beam-3 batch-1 latency and achieved GFLOP/s, each the median of
 * timed runs after warm-up. The same model and batch as the PyTorch peer (torch_std_bench.py),
 * so the figures compare.
 *
 *   npm run bench                      # a table on stdout, logs on stderr
 *   npm run bench -- --json            # one JSON object on stdout
 *   npm run bench -- --backend cpu     # or CAPTIONER_BACKEND; CAPTIONER_NATIVE=0 for pure JS
 *   npm run bench -- --profile         # also the kernel calls and times of one training step and caption
 *   npm run bench -- --profile --profile-runs 5   # each kernel's median over 5 profiled runs, and CPU time
 *   npm run bench -- --config default  # also the bundled model's architecture (models/default)
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../model/runtime/backend.ts';
import { Captioner } from '../model/nn/captioner.ts';
import { beamSearch, greedyDecode } from '../model/decode/decode.ts';
import { nativeStatus } from '../model/runtime/native.ts';
import { Trainer } from '../model/train/trainer.ts';
import { END, SPECIAL_TOKENS, START, Vocabulary } from '../model/text/vocab.ts';
import { readDefaultModelConfig, readStdConfig, stdFlops } from './std-config.ts';
import type { ModelConfig } from '../model/nn/captioner.ts';
import type { TrainConfig } from '../model/train/config.ts';

const VOCAB = 1000;
const BEAM = 3;

/** The JSON keys shared with the PyTorch peer. */
export interface StdBenchResult {
  backend: string;
  native: string | null;
  train_images_per_s: number;
  train_step_ms: number;
  /** The process's CPU time per training step, every thread's (less sensitive to other jobs than train_step_ms). */
  train_step_cpu_ms: number;
  train_gflops: number;
  greedy_b1_ms: number;
  greedy_b32_captions_per_s: number;
  beam3_b1_ms: number;
  /** With --config default: the bundled model's architecture (models/default) at its batch size. */
  train_images_per_s_default?: number;
  greedy_b1_ms_default?: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Median milliseconds of `fn` over up to `reps` runs after `warm` untimed ones, within `budgetS`,
 * and the process's mean CPU milliseconds a run (every thread's: what other jobs on the machine
 * take from it shows in `ms`, much less in `cpuMs`).
 */
function timed(
  fn: () => void,
  reps: number,
  warm: number,
  budgetS: number,
): { ms: number; cpuMs: number; runs: number } {
  for (let i = 0; i < warm; i++) fn();
  const times: number[] = [];
  const start = performance.now();
  const cpu = process.cpuUsage();
  while (times.length < reps && (times.length === 0 || performance.now() - start < budgetS * 1000)) {
    const t = performance.now();
    fn();
    times.push(performance.now() - t);
  }
  const used = process.cpuUsage(cpu);
  return { ms: median(times), cpuMs: (used.user + used.system) / 1000 / times.length, runs: times.length };
}

/** A vocabulary of `size` words: the four special tokens and synthetic words. */
function syntheticVocabulary(size: number): Vocabulary {
  return new Vocabulary([
    ...SPECIAL_TOKENS,
    ...Array.from({ length: size - SPECIAL_TOKENS.length }, (_, i) => `w${i}`),
  ]);
}

function randomInts(n: number, lo: number, hi: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + (s % (hi - lo));
  }
  return out;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** A model of `config` with a synthetic vocabulary of `vocabSize`, its trainer and a batch to time them on. */
async function benchSetup(model: ModelConfig, train: TrainConfig, vocabSize: number) {
  const vocab = syntheticVocabulary(vocabSize);
  const captioner = await Captioner.create(model, vocab, 1);
  // <end> can never win, so every greedy caption runs all maxLength steps, as the peer's
  // fixed-length loop does, and the work timed does not depend on the random weights.
  const outputBias = captioner.namedWeights()['decoder/output/bias']!;
  tf.tidy(() => outputBias.assign(tf.tensor1d(Array.from({ length: vocabSize }, (_, i) => (i === END ? -1e9 : 0)))));
  const trainer = new Trainer(captioner, train);
  const { batchSize } = train;
  const size = model.imageSize;
  const images = Float32Array.from({ length: batchSize * size * size * 3 }, (_, i) => ((i * 2654435761) % 1000) / 1000);
  const width = model.maxLength + 1;
  const tokens = randomInts(batchSize * width, SPECIAL_TOKENS.length, vocabSize, 7); // no <pad>: the mask is all ones
  for (let b = 0; b < batchSize; b++) tokens[b * width] = START;
  const batch = { imageIds: [], tokens, batchSize, width };
  let step = 0;
  return {
    captioner,
    images,
    /** Decoding runs one step per word and one more for <end>: 15 words make the peer's 16 steps. */
    decodeLength: model.maxLength - 1,
    trainStep: () => void trainer.step(images, batch, step++, 1000),
    /** The first `n` images as a tensor. */
    imageBatch: (n: number) => tf.tensor4d(images.subarray(0, n * size * size * 3), [n, size, size, 3]),
    dispose: () => {
      trainer.optimizer.dispose();
      captioner.dispose();
    },
  };
}

/**
 * The kernel profile of `fn` on stderr: kernel calls and time, the 15 slowest kernels. Kernel
 * calls are TF.js kernels (a fused native kernel counts one); the optimiser's native update is
 * no kernel. With `runs` > 1 each kernel's time is its median over that many profiled runs, and
 * the process's CPU time per run (every thread's) is printed too: on a machine other jobs load,
 * one run's wall-clock kernel times are noise, while medians and CPU time stay comparable.
 */
async function profileKernels(label: string, fn: () => void, runs: number): Promise<void> {
  fn();
  const perRun: Map<string, { ms: number; calls: number }>[] = [];
  const cpuMs: number[] = [];
  let calls = 0;
  for (let r = 0; r < runs; r++) {
    const cpu = process.cpuUsage();
    const profile = await tf.profile(fn);
    const used = process.cpuUsage(cpu);
    cpuMs.push((used.user + used.system) / 1000);
    calls = profile.kernels.length;
    const byKernel = new Map<string, { ms: number; calls: number }>();
    for (const k of profile.kernels) {
      const entry = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
      entry.ms += k.kernelTimeMs as number;
      entry.calls += 1;
      byKernel.set(k.name, entry);
    }
    perRun.push(byKernel);
  }
  const names = new Set(perRun.flatMap((m) => [...m.keys()]));
  const byKernel = [...names].map((name) => ({
    name,
    ms: median(perRun.map((m) => m.get(name)?.ms ?? 0)),
    calls: perRun[0]!.get(name)?.calls ?? 0,
  }));
  const total = byKernel.reduce((a, b) => a + b.ms, 0);
  const of = runs > 1 ? ` (medians of ${runs} runs; process CPU time ${median(cpuMs).toFixed(0)} ms a run)` : '';
  log(`${label}: ${calls} kernel calls, ${total.toFixed(0)} ms of kernel time${of}`);
  for (const { name, ms, calls: n } of byKernel.sort((a, b) => b.ms - a.ms).slice(0, 15))
    log(`  ${name.padEnd(32)} ${ms.toFixed(1).padStart(9)} ms ${String(n).padStart(6)} calls`);
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      backend: { type: 'string' },
      'train-steps': { type: 'string', default: '10' },
      budget: { type: 'string', default: '60' },
      profile: { type: 'boolean', default: false },
      'profile-runs': { type: 'string', default: '1' },
      config: { type: 'string', default: 'std' },
    },
  });
  if (args.config !== 'std' && args.config !== 'default')
    throw new Error(
      `--config ${args.config}: expected "std" (the standard configuration only) or "default" (also the bundled model's architecture)`,
    );
  const budget = Number(args.budget);
  const trainSteps = Number(args['train-steps']);
  const profileRuns = Number(args['profile-runs']);
  if (!Number.isInteger(profileRuns) || profileRuns < 1)
    throw new Error(`--profile-runs ${args['profile-runs']}: expected a whole number of runs, 1 or more`);
  const backend = await selectBackend(args.backend, log);
  const { train: trainConfig, model: config } = await readStdConfig();
  const { batchSize } = trainConfig;
  const std = await benchSetup(config, trainConfig, VOCAB);
  const { captioner: model, decodeLength, trainStep } = std;

  if (args.profile) {
    await profileKernels('one training step (batch 32)', trainStep, profileRuns);
    const image = std.imageBatch(1);
    await profileKernels(
      'one greedy batch-1 caption',
      () => void greedyDecode(model, image, decodeLength),
      profileRuns,
    );
    const images32 = std.imageBatch(batchSize);
    await profileKernels(
      `one greedy batch-${batchSize} decode`,
      () => void greedyDecode(model, images32, decodeLength),
      profileRuns,
    );
    images32.dispose();
    await profileKernels(
      'one beam-3 batch-1 caption',
      () => void beamSearch(model, image, { beamWidth: BEAM, maxLength: decodeLength }),
      profileRuns,
    );
    image.dispose();
  }

  const flops = stdFlops(config, VOCAB, BEAM);
  log(`timing training steps (batch ${batchSize})…`);
  const train = timed(trainStep, trainSteps, 2, budget);
  const one = std.imageBatch(1);
  const all = std.imageBatch(batchSize);
  log('timing greedy decoding…');
  const greedy1 = timed(() => void greedyDecode(model, one, decodeLength), 20, 3, budget);
  const greedy32 = timed(() => void greedyDecode(model, all, decodeLength), 10, 2, budget);
  log('timing beam search…');
  const beamRun = timed(() => void beamSearch(model, one, { beamWidth: BEAM, maxLength: decodeLength }), 20, 3, budget);
  const beam = beamRun.ms;
  tf.dispose([one, all]);
  std.dispose();

  const status = nativeStatus();
  const result: StdBenchResult = {
    backend: backend === 'cpu' && status?.enabled ? 'cpu+native' : backend,
    native: status ? (status.enabled ? status.detail : 'off') : null,
    train_images_per_s: (batchSize * 1000) / train.ms,
    train_step_ms: train.ms,
    train_step_cpu_ms: train.cpuMs,
    train_gflops: (flops.train * batchSize) / (train.ms / 1000) / 1e9,
    greedy_b1_ms: greedy1.ms,
    greedy_b32_captions_per_s: (batchSize * 1000) / greedy32.ms,
    beam3_b1_ms: beam,
  };
  const rows: [string, string][] = [
    ['backend', result.backend + (result.native && result.native !== 'off' ? ` (${result.native})` : '')],
    [
      'train images/s',
      `${result.train_images_per_s.toFixed(2)}  (step ${train.ms.toFixed(0)} ms, median of ${train.runs}; ${train.cpuMs.toFixed(0)} ms CPU a step)`,
    ],
    ['train GFLOP/s', result.train_gflops.toFixed(2)],
    [
      'greedy batch-1 latency',
      `${greedy1.ms.toFixed(1)} ms  (median of ${greedy1.runs}; ${greedy1.cpuMs.toFixed(1)} ms CPU)`,
    ],
    [
      'greedy batch-32',
      `${result.greedy_b32_captions_per_s.toFixed(1)} captions/s  (median of ${greedy32.runs}; ${greedy32.cpuMs.toFixed(0)} ms CPU a batch)`,
    ],
    [
      'beam-3 batch-1 latency',
      `${beam.toFixed(1)} ms  (median of ${beamRun.runs}; ${beamRun.cpuMs.toFixed(1)} ms CPU)`,
    ],
  ];

  if (args.config === 'default') {
    // The bundled model's architecture (attention decoder over a grid encoder): what users train.
    const bundled = await readDefaultModelConfig();
    const def = await benchSetup(bundled.model, bundled.train, bundled.vocabSize);
    const defBatch = bundled.train.batchSize;
    if (args.profile)
      await profileKernels(`default model: one training step (batch ${defBatch})`, def.trainStep, profileRuns);
    log(`timing the default model's training steps (batch ${defBatch})…`);
    const defTrain = timed(def.trainStep, trainSteps, 2, budget);
    const defOne = def.imageBatch(1);
    log("timing the default model's greedy decoding…");
    const defGreedy = timed(() => void greedyDecode(def.captioner, defOne, def.decodeLength), 20, 3, budget);
    defOne.dispose();
    def.dispose();
    result.train_images_per_s_default = (defBatch * 1000) / defTrain.ms;
    result.greedy_b1_ms_default = defGreedy.ms;
    rows.push(
      [
        'default: train images/s',
        `${result.train_images_per_s_default.toFixed(2)}  (batch ${defBatch}, step ${defTrain.ms.toFixed(0)} ms, median of ${defTrain.runs}; ${defTrain.cpuMs.toFixed(0)} ms CPU a step)`,
      ],
      [
        'default: greedy batch-1',
        `${defGreedy.ms.toFixed(1)} ms  (median of ${defGreedy.runs}; ${defGreedy.cpuMs.toFixed(1)} ms CPU)`,
      ],
    );
  }

  if (args.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(24)} ${v}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
