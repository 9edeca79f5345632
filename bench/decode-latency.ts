/**
 * `node --import tsx bench/decode-latency.ts`: the spread of the standard configuration's
 * decoding latency (configs/std.json, vocabulary 1000, <end> kept from winning as in
 * bench/std.ts): greedy batch-1 and beam-3 batch-1 captions, each timed `--reps` times after
 * warm-up, as the 10th, 50th and 90th percentiles of wall-clock milliseconds and the process's
 * CPU milliseconds a caption. `npm run bench` gives the medians the peer compares; this says how
 * stable they are.
 *
 *   node --import tsx bench/decode-latency.ts              # 200 captions of each
 *   node --import tsx bench/decode-latency.ts --reps 500
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../model/runtime/backend.ts';
import { Captioner } from '../model/nn/captioner.ts';
import { beamSearch, greedyDecode } from '../model/decode/decode.ts';
import { END, SPECIAL_TOKENS, Vocabulary } from '../model/text/vocab.ts';
import { readStdConfig } from './std-config.ts';

const VOCAB = 1000;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({ options: { reps: { type: 'string', default: '200' } } });
  const reps = Number(args.reps);
  if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps ${args.reps}: expected a whole number, 1 or more`);
  await selectBackend(undefined, (line) => process.stderr.write(`${line}\n`));
  const { model: config } = await readStdConfig();
  const vocab = new Vocabulary([
    ...SPECIAL_TOKENS,
    ...Array.from({ length: VOCAB - SPECIAL_TOKENS.length }, (_, i) => `w${i}`),
  ]);
  const model = await Captioner.create(config, vocab, 1);
  const bias = model.namedWeights()['decoder/output/bias']!;
  tf.tidy(() => bias.assign(tf.tensor1d(Array.from({ length: VOCAB }, (_, i) => (i === END ? -1e9 : 0)))));
  const size = config.imageSize;
  const image = tf.tensor4d(
    Float32Array.from({ length: size * size * 3 }, (_, i) => ((i * 2654435761) % 1000) / 1000),
    [1, size, size, 3],
  );
  const length = config.maxLength - 1; // 15 words and <end>: the peer's 16 steps
  const runs: [string, () => void][] = [
    ['greedy batch-1', () => void greedyDecode(model, image, length)],
    ['beam-3 batch-1', () => void beamSearch(model, image, { beamWidth: 3, maxLength: length })],
  ];
  process.stdout.write(
    `${'decoding'.padEnd(16)} ${'p10 ms'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p90 ms'.padStart(8)} ${'CPU ms'.padStart(8)}\n`,
  );
  for (const [label, fn] of runs) {
    for (let i = 0; i < 10; i++) fn();
    const times: number[] = [];
    const cpu = process.cpuUsage();
    for (let i = 0; i < reps; i++) {
      const t = performance.now();
      fn();
      times.push(performance.now() - t);
    }
    const used = process.cpuUsage(cpu);
    times.sort((a, b) => a - b);
    const cells = [0.1, 0.5, 0.9].map((p) => percentile(times, p).toFixed(1).padStart(8));
    const cpuMs = ((used.user + used.system) / 1000 / reps).toFixed(1).padStart(8);
    process.stdout.write(`${label.padEnd(16)} ${cells.join(' ')} ${cpuMs}\n`);
  }
  image.dispose();
  model.dispose();
}

main().catch((err: unknown) => {
  process.stderr.write(`decode-latency: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
