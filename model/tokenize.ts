/**
 * PTB-style tokenization as the captioning literature applies it before training and scoring:
 * coco-caption (pycocoevalcap/tokenizer/ptbtokenizer.py) runs Stanford's PTBTokenizer with
 * lower-casing, then drops these punctuation tokens. Clitics are split the PTB way
 * ("dog's" → "dog 's", "don't" → "do n't"); hyphenated words stay whole.
 */
export const PTB_PUNCTUATION: ReadonlySet<string> = new Set([
  "''", "'", '``', '`', '-lrb-', '-rrb-', '-lcb-', '-rcb-', '.', '?', '!', ',', ':', '-', '--', '...', ';',
]);

const CLITIC = /^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$/;

/** Splits a caption into lower-case word tokens with PTB punctuation removed. */
export function ptbTokenize(text: string): string[] {
  const spaced = text
    .toLowerCase()
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/["\u201c\u201d`()[\]{}]/g, ' ')
    // ,;:?! are tokens of their own, except a comma between digits ("3,000").
    .replace(/(?<!\d),|,(?!\d)/g, ' , ')
    .replace(/([;:?!])/g, ' $1 ');
  const out: string[] = [];
  for (const raw of spaced.split(/\s+/)) {
    // Leading quotes and trailing dots are punctuation tokens; internal ones ("2.5", "a.m") stay.
    let token = raw.replace(/^'+/, '').replace(/\.+$/, '');
    if (token.endsWith("'") && !token.endsWith("n'")) token = token.replace(/'+$/, '');
    if (!token || PTB_PUNCTUATION.has(token) || /^-+$/.test(token)) continue;
    const clitic = CLITIC.exec(token);
    if (clitic && clitic[1] !== "'") {
      out.push(clitic[1]!, clitic[2]!);
    } else {
      out.push(token);
    }
  }
  return out;
}
