/**
 * PTB-style tokenization as the captioning literature applies it before training and scoring.
 *
 * The reference is coco-caption's pycocoevalcap/tokenizer/ptbtokenizer.py: it runs Stanford
 * CoreNLP 3.4.1's PTBTokenizer (`-preserveLines -lowerCase`, PTB3 escaping on), then drops the
 * tokens in its PUNCTUATIONS list. This is a re-implementation of the rules that matter for
 * captions, not of the whole Java lexer:
 *
 * - lower-cased; split on whitespace;
 * - , ; : ? ! are tokens of their own (except a comma or colon between digits: "3,000", "10:30");
 *   $ # % are split off ("$5" → "$ 5", "50%" → "50 %");
 * - a word's final period is split off ("dog." → "dog ."), except for acronyms ("u.s.", "a.m.")
 *   and a list of common abbreviations ("mr.", "st.", "etc."), which keep it as PTBTokenizer does;
 *   "..." and runs of dashes ("--") are tokens; hyphenated words stay whole ("t-shirt");
 * - quotes become `` '' ` ' tokens; clitics split the PTB way: "dog's" → "dog 's",
 *   "don't" → "do n't", "cannot" → "can not", "gonna" → "gon na";
 * - brackets become -lrb- -rrb- -lsb- -rsb- -lcb- -rcb-.
 *
 * Then coco-caption's punctuation removal: '' ' `` ` . ? ! , : - -- ... ; are dropped. Its list
 * also names "-LRB-", "-RRB-", "-LCB-", "-RCB-", but in upper case, while `-lowerCase` has already
 * lower-cased every token (PTBTokenizer.tokReader lower-cases before printing), so brackets
 * survive as "-lrb-" etc. in coco-caption's output, and here too.
 *
 * Where this can still differ from the Java tokenizer: PTBTokenizer's full abbreviation lists
 * (state, month and company abbreviations beyond the common ones here), URLs, e-mail addresses,
 * emoticons, phone numbers and fractions ("1/2" as one token is kept, "1 1/2" is not joined), SGML
 * entities (&amp;), Unicode quote/dash normalisation beyond curly quotes, and the assimilations
 * other than those listed. For ordinary captions (words, commas, a final period) the output is the
 * same. Neither implementation of this rule set was checked against the 3.4.1 jar on this machine
 * (it is not shipped); the rules follow PTBTokenizer's documented PTB3 conventions.
 */
export const PTB_PUNCTUATION: ReadonlySet<string> = new Set([
  "''",
  "'",
  '``',
  '`',
  '.',
  '?',
  '!',
  ',',
  ':',
  '-',
  '--',
  '...',
  ';',
]);

const CLITIC = /^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$/;
const BARE_CLITIC = /^(n't|'s|'re|'ve|'ll|'d|'m)$/;

/** Words PTB splits in two: "cannot" → "can not", "gonna" → "gon na" (PTB3 assimilations). */
export const ASSIMILATIONS: ReadonlyMap<string, readonly string[]> = new Map([
  ['cannot', ['can', 'not']],
  ['gonna', ['gon', 'na']],
  ['gotta', ['got', 'ta']],
  ['wanna', ['wan', 'na']],
  ['lemme', ['lem', 'me']],
  ['gimme', ['gim', 'me']],
  ["'tis", ["'t", 'is']],
  ["'twas", ["'t", 'was']],
]);

/** Abbreviations that keep their period (a small part of PTBTokenizer's lists). */
const ABBREVIATIONS: ReadonlySet<string> = new Set([
  'mr',
  'mrs',
  'ms',
  'dr',
  'prof',
  'st',
  'jr',
  'sr',
  'mt',
  'ft',
  'ave',
  'blvd',
  'rd',
  'vs',
  'etc',
  'inc',
  'co',
  'corp',
  'ltd',
  'bros',
  'gen',
  'col',
  'sgt',
  'capt',
  'lt',
  'gov',
  'sen',
  'rep',
  'rev',
]);

const BRACKETS: Readonly<Record<string, string>> = {
  '(': ' -lrb- ',
  ')': ' -rrb- ',
  '[': ' -lsb- ',
  ']': ' -rsb- ',
  '{': ' -lcb- ',
  '}': ' -rcb- ',
};

/** One whitespace-delimited chunk → PTB tokens (before punctuation removal). */
function splitChunk(raw: string, out: string[]): void {
  let token = raw;
  if (BARE_CLITIC.test(token)) {
    out.push(token);
    return;
  }
  // Opening quotes: ` or ' at the start of a word (not the apostrophe of "'tis").
  while (/^['`]/.test(token) && !ASSIMILATIONS.has(token) && !BARE_CLITIC.test(token)) {
    out.push('`');
    token = token.slice(1);
  }
  // Closing material, collected from the right: quotes, then a period.
  const tail: string[] = [];
  for (;;) {
    if (/[^n]'$/.test(token) || token === "'") {
      tail.unshift("'");
      token = token.slice(0, -1);
    } else if (token.endsWith('.') && token.length > 1 && !keepsPeriod(token)) {
      tail.unshift('.');
      token = token.slice(0, -1);
    } else {
      break;
    }
  }
  if (token) {
    const assimilated = ASSIMILATIONS.get(token);
    const clitic = CLITIC.exec(token);
    if (assimilated) out.push(...assimilated);
    else if (clitic && clitic[1] !== "'" && clitic[1] !== '`') out.push(clitic[1]!, clitic[2]!);
    else out.push(token);
  }
  out.push(...tail);
}

/** An acronym ("u.s.", "a.m.", "j.") or a listed abbreviation keeps its final period. */
function keepsPeriod(token: string): boolean {
  return /^([a-z]\.)+$/.test(token) || ABBREVIATIONS.has(token.slice(0, -1));
}

/** Splits a caption into lower-case word tokens with coco-caption's punctuation tokens removed. */
export function ptbTokenize(text: string): string[] {
  const spaced = text
    .toLowerCase()
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/[\u201c\u201d"]/g, ' " ')
    .replace(/[()[\]{}]/g, (b) => BRACKETS[b]!)
    .replace(/\.{3,}|\u2026/g, ' ... ')
    .replace(/-{2,}|[\u2013\u2014]/g, ' -- ')
    // ,:  are tokens of their own, except between digits ("3,000", "10:30").
    .replace(/(?<!\d)([,:])|([,:])(?!\d)/g, ' $1$2 ')
    .replace(/([;?!$#%])/g, ' $1 ');
  const out: string[] = [];
  for (const raw of spaced.split(/\s+/)) {
    if (!raw) continue;
    if (raw === '"' || raw === '...' || raw === '--' || /^-+$/.test(raw)) {
      out.push(raw === '"' ? "''" : raw);
      continue;
    }
    splitChunk(raw, out);
  }
  return out.filter((token) => !PTB_PUNCTUATION.has(token));
}
