/**
 * The vocabulary: word ↔ id, with the four special tokens every captioning model needs.
 * Built from the training split only, so that validation and test words the model never saw
 * become <unk> exactly as they would for a new image.
 */
import { ptbTokenize } from './tokenize.ts';

export const PAD = 0;
export const START = 1;
export const END = 2;
export const UNK = 3;
export const SPECIAL_TOKENS = ['<pad>', '<start>', '<end>', '<unk>'] as const;

export interface VocabJson {
  format: 'captioner-vocab';
  version: 1;
  words: string[];
}

export class Vocabulary {
  readonly words: readonly string[];
  private readonly index: Map<string, number>;

  constructor(words: readonly string[]) {
    SPECIAL_TOKENS.forEach((tok, i) => {
      if (words[i] !== tok) throw new Error(`vocabulary: word ${i} must be ${tok}, got ${JSON.stringify(words[i])}`);
    });
    this.words = words;
    this.index = new Map(words.map((w, i) => [w, i]));
    if (this.index.size !== words.length) throw new Error('vocabulary: duplicate words');
  }

  get size(): number {
    return this.words.length;
  }

  /**
   * Builds a vocabulary from captions: words seen at least `minCount` times, most frequent
   * first (ties alphabetical, so the same captions always give the same ids).
   */
  static build(captions: Iterable<string>, minCount: number): Vocabulary {
    const counts = new Map<string, number>();
    for (const caption of captions) {
      for (const word of ptbTokenize(caption)) counts.set(word, (counts.get(word) ?? 0) + 1);
    }
    const kept = [...counts]
      .filter(([w, n]) => n >= minCount && !(SPECIAL_TOKENS as readonly string[]).includes(w))
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([w]) => w);
    return new Vocabulary([...SPECIAL_TOKENS, ...kept]);
  }

  id(word: string): number {
    return this.index.get(word) ?? UNK;
  }

  /** `<start> w1 … wn <end>` as ids, the caption cut to `maxLength` words. */
  encode(caption: string, maxLength: number): number[] {
    const words = ptbTokenize(caption).slice(0, maxLength);
    return [START, ...words.map((w) => this.id(w)), END];
  }

  /** Ids back to words, stopping at <end> and skipping <start> and <pad>. */
  decode(ids: Iterable<number>): string[] {
    const out: string[] = [];
    for (const id of ids) {
      if (id === END) break;
      if (id === START || id === PAD) continue;
      out.push(this.words[id] ?? SPECIAL_TOKENS[UNK]);
    }
    return out;
  }

  toJSON(): VocabJson {
    return { format: 'captioner-vocab', version: 1, words: [...this.words] };
  }

  static fromJSON(json: unknown, source = 'vocabulary'): Vocabulary {
    const v = json as Partial<VocabJson> | null;
    if (
      !v ||
      v.format !== 'captioner-vocab' ||
      !Array.isArray(v.words) ||
      !v.words.every((w) => typeof w === 'string')
    ) {
      throw new Error(`${source}: not a captioner vocabulary (expected {"format":"captioner-vocab","words":[...]})`);
    }
    return new Vocabulary(v.words);
  }
}
