/** Loading a trained model for captioning. */
import { Captioner } from '../nn/captioner.ts';
import { disposeCheckpoint, loadCheckpoint } from './checkpoint.ts';
import { readPrior } from '../decode/prior.ts';

/**
 * Loads the model in `modelDir` (its best checkpoint, else its latest; or a checkpoint
 * directory itself) with its vocabulary and, when the checkpoint has one, the language prior
 * anti-LM decoding uses (model/decode/prior.ts), ready to caption.
 */
export async function loadModel(modelDir: string, which: 'best' | 'latest' = 'best'): Promise<Captioner> {
  const ckpt = await loadCheckpoint(modelDir, which);
  try {
    const prior = await readPrior(ckpt.dir, ckpt.vocab);
    const model = await Captioner.restore(ckpt.config.model, ckpt.vocab, ckpt.weights, ckpt.backboneTopology);
    model.languagePrior = prior;
    return model;
  } finally {
    disposeCheckpoint(ckpt);
  }
}
