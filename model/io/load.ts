/** Loading a trained model for captioning. */
import { Captioner } from '../nn/captioner.ts';
import { disposeCheckpoint, loadCheckpoint } from './checkpoint.ts';
import type { LanguagePrior } from '../decode/prior.ts';
import { readPrior } from '../decode/prior-files.ts';
import { FamiliarityModel } from '../familiarity/familiarity.ts';
import { readFamiliarity } from '../familiarity/store.ts';
import type { RecommendedDecoding } from '../decode/recommended.ts';
import { readRecommendedDecoding } from './decoding-file.ts';

/** A trained model and what its directory holds for decoding it. */
export interface LoadedModel {
  model: Captioner;
  /**
   * The language prior of the model's training captions (language-prior.json), for anti-LM
   * decoding; null when the checkpoint has none. It is a decoding setting, not part of the
   * network: pass it to the decoder (`prior` in model/decode/options.ts DecodeOptions), and its
   * `antiLm` weight is then the default.
   */
  prior: LanguagePrior | null;
  /**
   * How familiar an image looks to the model (model/familiarity/), from the checkpoint's
   * familiarity.json; null when the model was never calibrated (its captions then carry none).
   */
  familiarity: FamiliarityModel | null;
  /**
   * How the model should be decoded unless the caller says otherwise (decoding.json,
   * model/decode/recommended.ts `applyRecommendation`); null when the checkpoint has none.
   */
  decoding: RecommendedDecoding | null;
}

/**
 * Loads the model in `modelDir` (its best checkpoint, else its latest; or a checkpoint
 * directory itself) with its vocabulary and, when the checkpoint has them, the language prior
 * anti-LM decoding uses (model/decode/prior.ts), the familiarity calibration
 * (model/familiarity/) and the recommended decoding (decoding.json), ready to caption.
 */
export async function loadModel(modelDir: string, which: 'best' | 'latest' = 'best'): Promise<LoadedModel> {
  const ckpt = await loadCheckpoint(modelDir, which);
  try {
    const prior = await readPrior(ckpt.dir, ckpt.vocab);
    const calibration = await readFamiliarity(ckpt.dir);
    const decoding = await readRecommendedDecoding(ckpt.dir);
    const model = await Captioner.restore(ckpt.config.model, ckpt.vocab, ckpt.weights, ckpt.backboneTopology);
    return { model, prior, familiarity: calibration ? new FamiliarityModel(calibration) : null, decoding };
  } finally {
    disposeCheckpoint(ckpt);
  }
}
