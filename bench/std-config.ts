/**
 * The standard benchmark configuration ("std", docs/performance.md) as the benchmark reads
 * it: the recipe configs/std.json over the training defaults, so that the bench, `captioner train
 * --config configs/std.json` and the docs share one source.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readCheckpointConfig } from '../model/io/checkpoint.ts';
import { MODEL_KEYS, checkModelConfig, type ModelConfig } from '../model/nn/captioner.ts';
import { TRAIN_DEFAULTS, TRAIN_SPEC, type TrainConfig } from '../model/train/config.ts';
import { pick, resolveConfig } from '../model/util/config.ts';
import { readConfigFile } from '../model/util/config-file.ts';

/** configs/std.json, wherever the bench runs from. */
export const STD_CONFIG_FILE = fileURLToPath(new URL('../configs/std.json', import.meta.url));

/** The std training configuration and its model part, resolved from `file` (configs/std.json). */
export async function readStdConfig(file = STD_CONFIG_FILE): Promise<{ train: TrainConfig; model: ModelConfig }> {
  const train = resolveConfig<TrainConfig>(TRAIN_DEFAULTS, TRAIN_SPEC, [await readConfigFile(file)]);
  checkModelConfig(train);
  return { train, model: pick(train, MODEL_KEYS) };
}

/**
 * Analytic FLOPs per image of the std model (a multiply-add counts 2; elementwise work is
 * left out), as the peer counts them: convolutions at each resolution, the feature and
 * initial-state dense layers, and per step the LSTM's four gates and the output layer.
 * Training costs about three forward passes (forward, and a backward pass twice as large);
 * beam search runs `beamWidth` hypotheses per step.
 */
export function stdFlops(
  config: ModelConfig,
  vocab: number,
  beamWidth: number,
): { forward: number; train: number; beam: number } {
  let conv = 0;
  let inChannels = 3;
  let side = config.imageSize;
  for (const out of config.encoderChannels) {
    conv += 2 * side * side * 9 * inChannels * out;
    inChannels = out;
    side = Math.floor(side / 2);
  }
  const H = config.hiddenSize;
  const head = 2 * inChannels * config.featureSize + 2 * (2 * config.featureSize * H);
  const step = 2 * (config.embeddingSize + H) * 4 * H + 2 * H * vocab;
  const forward = conv + head + config.maxLength * step;
  return { forward, train: 3 * forward, beam: conv + head + config.maxLength * beamWidth * step };
}

/** The bundled model's directory (models/default). */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../models/default', import.meta.url));

/**
 * The bundled model's architecture and the training settings that shape a step's work (batch
 * size, clipping, label smoothing), read from its checkpoint's saved configuration, with its
 * vocabulary size: what `npm run bench -- --config default` times. The data-dependent settings
 * (word substitution) are left off: the bench has no captions to read word slots from.
 */
export async function readDefaultModelConfig(
  dir = DEFAULT_MODEL_DIR,
): Promise<{ train: TrainConfig; model: ModelConfig; vocabSize: number }> {
  const { dir: ckpt, config } = await readCheckpointConfig(dir);
  const saved = config.train as Partial<TrainConfig>;
  const train = resolveConfig<TrainConfig>(TRAIN_DEFAULTS, TRAIN_SPEC, [
    {
      source: `${ckpt}/config.json`,
      values: {
        ...config.model,
        batchSize: saved.batchSize,
        learningRate: saved.learningRate,
        clipNorm: saved.clipNorm,
        labelSmoothing: saved.labelSmoothing,
      },
    },
  ]);
  const vocab = JSON.parse(await readFile(join(ckpt, 'vocab.json'), 'utf8')) as { words: string[] };
  return { train, model: config.model, vocabSize: vocab.words.length };
}
