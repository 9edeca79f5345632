/** Types of sentence.js (a plain ES module, so that the page's script runs the same file). */

/** One piece of a caption shown as a sentence. */
export interface SentencePart {
  /** What is shown. */
  text: string;
  /** The index of the token it shows, or null for punctuation added here (the final period). */
  word: number | null;
  /** Whether a space comes before it. */
  space: boolean;
}

export function sentenceParts(words: readonly string[], complete?: boolean): SentencePart[];
export function toSentence(words: readonly string[]): string;
