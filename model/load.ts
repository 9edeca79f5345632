/** Loading a trained model for captioning. */
import { Captioner } from './captioner.ts';
import { disposeCheckpoint, loadCheckpoint } from './checkpoint.ts';

/**
 * Loads the model in `modelDir` (its best checkpoint, else its latest; or a checkpoint
 * directory itself) with its vocabulary, ready to caption.
 */
export async function loadModel(modelDir: string, which: 'best' | 'latest' = 'best'): Promise<Captioner> {
  const ckpt = await loadCheckpoint(modelDir, which);
  try {
    return await Captioner.restore(ckpt.config.model, ckpt.vocab, ckpt.weights, ckpt.backboneTopology);
  } finally {
    disposeCheckpoint(ckpt);
  }
}
