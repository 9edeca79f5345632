/** The tiny model configuration tests train in seconds, and a helper to train one on disk. */
import type { TrainConfig } from '../../model/train/config.ts';
import { resolveTrainConfig, train } from '../../model/train/trainer.ts';
import { tempDirUntilExit } from './temp-dir.ts';

export const TINY_MODEL = {
  imageSize: 16,
  encoderChannels: [8, 16],
  featureSize: 32,
  embeddingSize: 16,
  hiddenSize: 32,
  minWordCount: 1,
  maxLength: 6,
};

/** TINY_MODEL trained with teacher forcing at a learning rate that converges in a few hundred steps. */
export const TINY_TRAINING = {
  ...TINY_MODEL,
  batchSize: 6,
  learningRate: 0.003,
  samplingSchedule: 'constant',
  samplingK: 1,
  valSamples: 2,
  logEvery: 25,
  validateEvery: 50,
};

export async function tinyConfig(data: string, overrides: Record<string, unknown> = {}): Promise<TrainConfig> {
  const out = (overrides.out as string | undefined) ?? tempDirUntilExit('captioner-model-');
  return resolveTrainConfig([{ source: 'test', values: { ...TINY_TRAINING, data, out, ...overrides } }]);
}

/** Trains the tiny model on `data` for `epochs` (one step each) and returns its directory. */
export async function trainTinyModel(
  data: string,
  epochs = 400,
  overrides: Record<string, unknown> = {},
): Promise<string> {
  const config = await tinyConfig(data, { epochs, ...overrides });
  await train(config);
  return config.out;
}
