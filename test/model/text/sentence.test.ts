/** A caption's tokens as a sentence for people: the inverse of the PTB tokenizer where it can be. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sentenceParts, toSentence } from '../../../model/text/sentence.js';
import { ASSIMILATIONS, ptbTokenize } from '../../../model/text/tokenize.ts';

test('a caption becomes a sentence: capitalised, with a final period', () => {
  assert.equal(toSentence(['a', 'red', 'circle']), 'A red circle.');
  assert.equal(toSentence(['three', 'shapes', 'a', 'big', 'red', 'hexagon']), 'Three shapes a big red hexagon.');
  assert.equal(toSentence(['circle']), 'Circle.');
  assert.equal(toSentence([]), '', 'no caption: no lone period');
});

test('the tokens the PTB tokenizer split are joined back', () => {
  // Written as people write, tokenized as training and scoring see it, then shown again.
  const cases: [string, string][] = [
    ["a dog's ball", "A dog's ball."],
    ["the cat doesn't sleep", "The cat doesn't sleep."],
    ['i think they are gonna win', 'I think they are gonna win.'],
    ['a sign (red) on a pole', 'A sign (red) on a pole.'],
    ['a $5 bill and 50% off', 'A $5 bill and 50% off.'],
    ["i'm here", "I'm here."],
    ['a t-shirt near mr. smith', 'A t-shirt near mr. smith.'],
  ];
  for (const [written, shown] of cases) assert.equal(toSentence(ptbTokenize(written)), shown, written);
});

test("every assimilation the tokenizer splits is joined back (sentence.js's list is tokenize.ts's)", () => {
  for (const [whole, halves] of ASSIMILATIONS) {
    if (whole === 'cannot') {
      // "can not" is also how people write it: left as two words.
      assert.equal(toSentence([...halves]), 'Can not.');
      continue;
    }
    const shown = toSentence(['x', ...halves]);
    assert.equal(shown, `X ${whole}.`, whole);
  }
});

test('punctuation the vocabulary holds goes where the model put it; no second period', () => {
  assert.equal(
    toSentence(['three', 'shapes', ':', 'a', 'circle', ',', 'a', 'star']),
    'Three shapes: a circle, a star.',
  );
  assert.equal(toSentence(['a', 'cat', '.']), 'A cat.');
  assert.equal(toSentence(['is', 'it', 'a', 'cat', '?']), 'Is it a cat?');
  assert.equal(toSentence(['a', 'cat', '.', 'a', 'dog']), 'A cat. A dog.');
  assert.equal(toSentence(['he', 'said', '``', 'hi', "''"]), 'He said "hi".');
});

test('unknown words and opening marks are not capitalised; the first word after them is', () => {
  assert.equal(toSentence(['<unk>', 'on', 'a', 'table']), '<unk> on a table.');
  assert.equal(toSentence(['-lrb-', 'a', 'cat', '-rrb-']), '(A cat).');
});

test('the parts: one per token in order, the added period marked as no token', () => {
  const parts = sentenceParts(['a', 'dog', "'s", 'ball']);
  assert.deepEqual(parts, [
    { text: 'A', word: 0, space: false },
    { text: 'dog', word: 1, space: true },
    { text: "'s", word: 2, space: false },
    { text: 'ball', word: 3, space: true },
    { text: '.', word: null, space: false },
  ]);
  // A caption still being written: the same parts, no period yet.
  assert.deepEqual(sentenceParts(['a', 'dog', "'s", 'ball'], false), parts.slice(0, 4));
});
