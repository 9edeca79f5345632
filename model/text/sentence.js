// A caption's tokens as a sentence for people. Plain JavaScript (with sentence.d.ts beside it)
// because the page's script runs the same file in the browser (the server serves it as
// /static/sentence.js), so that a caption reads the same whether the page streamed it or the
// server rendered it without JavaScript.

/**
 * PTB-escaped brackets and quotes (model/text/tokenize.ts) and what they stand for. coco-caption
 * drops the quotes, so a vocabulary built by ptbTokenize never holds them; a vocabulary built
 * otherwise may.
 */
const UNESCAPED = new Map([
  ['-lrb-', '('],
  ['-rrb-', ')'],
  ['-lsb-', '['],
  ['-rsb-', ']'],
  ['-lcb-', '{'],
  ['-rcb-', '}'],
  ['``', '"'],
  ["''", '"'],
  ['`', "'"],
]);

/** Tokens written against the word before them: closing marks, clitics ("dog 's" → "dog's"). */
const JOINS_PREVIOUS = new Set([
  ',',
  '.',
  ';',
  ':',
  '?',
  '!',
  '...',
  '%',
  "''",
  "'",
  '-rrb-',
  '-rsb-',
  '-rcb-',
  "'s",
  "'re",
  "'ve",
  "'ll",
  "'d",
  "'m",
  "n't",
]);

/** Tokens written against the word after them: opening marks, currency. */
const JOINS_NEXT = new Set(['-lrb-', '-lsb-', '-lcb-', '``', '`', '$', '#']);

/**
 * PTB's assimilations split back: the second half joins the first ("gon na" → "gonna"). The same
 * pairs as ASSIMILATIONS in model/text/tokenize.ts ("can not" stays two words: it is also how
 * people write it); test/model/text/sentence.test.ts checks the two lists agree.
 */
const ASSIMILATED = new Set(['gon na', 'got ta', 'wan na', 'lem me', 'gim me', "'t is", "'t was"]);

/** Marks that end a sentence: after one the next word is capitalised, and no period is added. */
const TERMINAL = new Set(['.', '?', '!', '...']);

/**
 * One piece of a caption shown as a sentence.
 * @typedef {object} SentencePart
 * @property {string} text what is shown
 * @property {number | null} word the index of the token it shows, or null for punctuation added here
 * @property {boolean} space whether a space comes before it
 */

/**
 * A caption's tokens (as the model writes them: lower case, punctuation removed by the PTB
 * tokenizer) as the pieces of a sentence: the first word capitalised, "i" as "I", clitics and
 * closing marks against the word before them, brackets unescaped, and, when `complete`, a final
 * period unless the caption already ends a sentence. Punctuation tokens the model's vocabulary
 * holds are placed where the model put them; the tokenizer removed the rest, so a final period is
 * all that can be put back. A caption still being written (`complete` false) gets no period.
 * One part per token, in order (`word` is its index), then the added period if any.
 * @param {readonly string[]} words
 * @param {boolean} [complete]
 * @returns {SentencePart[]}
 */
export function sentenceParts(words, complete = true) {
  /** @type {SentencePart[]} */
  const parts = [];
  let capitalise = true;
  words.forEach((token, i) => {
    const previous = i > 0 ? words[i - 1] : undefined;
    const space =
      previous !== undefined &&
      !JOINS_PREVIOUS.has(token) &&
      !JOINS_NEXT.has(previous) &&
      !ASSIMILATED.has(`${previous} ${token}`);
    let text = UNESCAPED.get(token) ?? token;
    if (text === 'i') text = 'I';
    if (capitalise && /^[a-z]/.test(text)) text = text[0].toUpperCase() + text.slice(1);
    // Capitalise the first word, not an opening bracket or quote before it.
    if (/[\p{L}\p{N}<]/u.test(text)) capitalise = false;
    if (TERMINAL.has(token)) capitalise = true;
    parts.push({ text, word: i, space });
  });
  const last = [...words].reverse().find((t) => !JOINS_PREVIOUS.has(t) || TERMINAL.has(t));
  if (complete && words.length > 0 && !(last !== undefined && TERMINAL.has(last)))
    parts.push({ text: '.', word: null, space: false });
  return parts;
}

/**
 * A caption's tokens as one sentence: "a red circle" → "A red circle." (see `sentenceParts`).
 * @param {readonly string[]} words
 * @returns {string}
 */
export function toSentence(words) {
  return sentenceParts(words)
    .map((p) => (p.space ? ` ${p.text}` : p.text))
    .join('');
}
