/**
 * Child process for the atomicity test: saves checkpoints of a ~16 MB model over and over, each
 * one's weights all equal to its step, and prints each step once it is saved.
 */
import * as tf from '@tensorflow/tfjs';
import { saveCheckpoint } from '../../model/io/checkpoint.ts';
import { MODEL_DEFAULTS } from '../../model/nn/captioner.ts';
import { Vocabulary } from '../../model/text/vocab.ts';

const dir = process.argv[2]!;
const vocab = Vocabulary.build(['a red circle'], 1);
for (let step = 1; ; step++) {
  const weights = { big: tf.fill([2000, 2000], step), small: tf.fill([10], step) };
  await saveCheckpoint(
    dir,
    {
      config: { model: MODEL_DEFAULTS, versions: { captioner: 'test', tfjs: tf.version.tfjs } },
      vocab,
      weights,
      backboneTopology: null,
      training: {
        state: { step, epoch: 0, batchInEpoch: step, seed: 1, bestMetric: null, samplingProbability: 1 },
        optimizer: { 'm/big': weights.small },
        optimizerStep: step,
      },
    },
    step % 3 === 0,
  );
  tf.dispose(Object.values(weights));
  process.stdout.write(`${step}\n`);
}
