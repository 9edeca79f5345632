/** Word substitution: classes read off the training captions, and the swap itself. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  describeClasses,
  substituteWords,
  substitutionClasses,
  substitutionRates,
} from '../../../model/train/substitution.ts';
import { Vocabulary } from '../../../model/text/vocab.ts';

const captions = [
  ...[
    'a red circle',
    'a blue circle',
    'a red square',
    'a blue square',
    'a red circle is left of a blue square',
  ].flatMap((c) => [c, c]),
  'a green circle', // its frame is seen once: not enough to join the colours
];
const vocab = Vocabulary.build(captions, 1);
const id = (w: string) => vocab.encode(w, 1)[1]!;
const encoded = captions.map((c) => vocab.encode(c, 20));
const classes = substitutionClasses(encoded, vocab.size);
const words = (w: string) => classes[id(w)]!.map((i) => vocab.words[i]);

test('words found between the same neighbours are substitutes; others are not', () => {
  assert.deepEqual(words('red'), ['blue']);
  assert.deepEqual(words('blue'), ['red']);
  assert.deepEqual(words('circle'), ['square']);
  assert.deepEqual(words('square'), ['circle']);
  assert.deepEqual(words('green'), [], 'a frame seen once does not count');
  assert.deepEqual(words('a'), []);
  assert.deepEqual(words('is'), []);
  for (const special of [0, 1, 2, 3]) assert.deepEqual(classes[special], [], 'special tokens are never substituted');
  // With a frame seen once counting, green joins the colours.
  const loose = substitutionClasses(encoded, vocab.size, { minFrameCount: 1 });
  assert.ok(loose[id('green')]!.includes(id('red')));
  // A stricter Jaccard threshold separates them again: green shares one of red's two frames (1/2).
  const strict = substitutionClasses(encoded, vocab.size, { minFrameCount: 1, minJaccard: 0.6 });
  assert.ok(!strict[id('green')]!.includes(id('red')));
  const line = describeClasses(classes, (i) => vocab.words[i]!);
  assert.match(line, /^4 of \d+ words have substitutes, e\.g\. /);
  assert.deepEqual(
    line
      .split('e.g. ')[1]!
      .split('; ')
      .map((g) => g.split(' ').sort().join(' '))
      .sort(),
    ['blue red', 'circle square'],
    'each group once',
  );
});

test('substituteWords swaps a word for another of its class with the given probability', () => {
  const ids = vocab.encode('a red circle is left of a blue square', 20);
  const n = ids.length;
  const ones = Array(n).fill(0.999);
  assert.deepEqual(
    Array.from(substituteWords(ids, classes, 0, Array(n).fill(0), ones)),
    ids,
    'rate 0 keeps every word',
  );
  const all = Array.from(substituteWords(ids, classes, 1, Array(n).fill(0), Array(n).fill(0)));
  ids.forEach((w, i) => {
    if (classes[w]!.length)
      assert.ok(classes[w]!.includes(all[i]!) && all[i] !== w, `position ${i} is swapped within its class`);
    else assert.equal(all[i], w, `position ${i} has no substitutes and stays`);
  });
  assert.deepEqual(vocab.decode(all), ['a', 'blue', 'square', 'is', 'left', 'of', 'a', 'red', 'circle']);
  // A coin at or above the rate keeps the word.
  const coins = ids.map((_, i) => (i % 2 ? 0.2 : 0.8));
  const half = Array.from(substituteWords(ids, classes, 0.5, coins, ones));
  ids.forEach((w, i) => assert.equal(half[i] === w, !(i % 2 && classes[w]!.length), `position ${i}`));
});

test('substitutionRates: a base rate, and word=rate pairs that set a whole slot', () => {
  const at = (rates: number[], w: string) => rates[id(w)];
  const base = substitutionRates(classes, 0.25, '', vocab.words);
  assert.equal(base.length, vocab.size);
  assert.ok(base.every((r) => r === 0.25));
  const colours = substitutionRates(classes, 0.25, 'red=0.75', vocab.words);
  assert.deepEqual(
    [at(colours, 'red'), at(colours, 'blue'), at(colours, 'circle'), at(colours, 'square')],
    [0.75, 0.75, 0.25, 0.25],
    'red names its slot: blue too',
  );
  const both = substitutionRates(classes, 0, ' square = 0.5 , red=1,blue=0.1', vocab.words);
  assert.deepEqual(
    [at(both, 'red'), at(both, 'blue'), at(both, 'circle'), at(both, 'square'), at(both, 'a')],
    [0.1, 0.1, 0.5, 0.5, 0],
    'pairs apply in order; spaces are allowed',
  );
  assert.throws(
    () => substitutionRates(classes, 0, 'purple=0.5', vocab.words),
    /"purple=0\.5": "purple" is not in the vocabulary/,
  );
  assert.throws(() => substitutionRates(classes, 0, 'is=0.5', vocab.words), /"is=0\.5": "is" has no substitutes/);
  assert.throws(
    () => substitutionRates(classes, 0, 'red=1.5', vocab.words),
    /"red=1\.5": the rate must be a number in \[0, 1\]/,
  );
  assert.throws(() => substitutionRates(classes, 0, 'red=lots', vocab.words), /"red=lots": the rate must be/);
  assert.throws(() => substitutionRates(classes, 0, 'red', vocab.words), /"red" is not word=rate/);

  // substituteWords reads a per-word rate by the word's id.
  const ids = vocab.encode('a red circle is left of a blue square', 20);
  const out = Array.from(
    substituteWords(
      ids,
      classes,
      substitutionRates(classes, 0, 'circle=1', vocab.words),
      Array(ids.length).fill(0.5),
      Array(ids.length).fill(0),
    ),
  );
  assert.deepEqual(vocab.decode(out), ['a', 'red', 'square', 'is', 'left', 'of', 'a', 'blue', 'circle']);
});
