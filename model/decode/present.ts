/**
 * A caption result as people and clients read it: the model's tokens and, beside them, the
 * sentence (model/text/sentence.js), and each alternative with its sentence and probability. The
 * server's JSON (server/captioning.ts `captionJson`) and the browser's on-device result
 * (browser/device.ts) are both this, plus where and how fast it was answered.
 */
import { toSentence } from '../text/sentence.js';
import type { CaptionResult } from './search-state.ts';

/** `result` for people: the sentence, the n-best list with probabilities, the attention maps when there are. */
export function presentCaption(result: CaptionResult) {
  return {
    caption: result.caption,
    /** The caption for people (model/text/sentence.js); `caption` and `words` keep the model's tokens. */
    sentence: toSentence(result.words),
    words: result.words,
    wordProbs: result.wordProbs,
    logProb: result.logProb,
    nbest: (result.nbest ?? [{ caption: result.caption, logProb: result.logProb }]).map((h) => ({
      ...h,
      sentence: toSentence(h.caption.split(' ').filter(Boolean)),
      prob: Math.exp(h.logProb),
    })),
    ...(result.attention ? { attention: result.attention } : {}),
  };
}
