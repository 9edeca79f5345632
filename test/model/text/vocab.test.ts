import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ptbTokenize } from '../../../model/text/tokenize.ts';
import { END, PAD, START, UNK, Vocabulary } from '../../../model/text/vocab.ts';

test('ptbTokenize lower-cases, drops punctuation tokens and splits clitics', () => {
  assert.deepEqual(ptbTokenize('A Man riding a horse.'), ['a', 'man', 'riding', 'a', 'horse']);
  assert.deepEqual(ptbTokenize('Two dogs, playing; in the "park"!'), ['two', 'dogs', 'playing', 'in', 'the', 'park']);
  assert.deepEqual(ptbTokenize("The dog's ball isn't red"), ['the', 'dog', "'s", 'ball', 'is', "n't", 'red']);
  // Brackets stay as -lrb-/-rrb-, as in coco-caption's output (see model/text/tokenize.ts).
  assert.deepEqual(ptbTokenize('a t-shirt -- and (3,000) people...'), [
    'a',
    't-shirt',
    'and',
    '-lrb-',
    '3,000',
    '-rrb-',
    'people',
  ]);
  assert.deepEqual(ptbTokenize('  '), []);
});

test('Vocabulary.build keeps words at the minimum count, most frequent first, ties alphabetical', () => {
  const v = Vocabulary.build(['a red circle', 'a blue circle', 'a red square', 'one zebra'], 2);
  assert.deepEqual(v.words, ['<pad>', '<start>', '<end>', '<unk>', 'a', 'circle', 'red']);
  assert.equal(v.id('zebra'), UNK);
  assert.equal(v.words[PAD], '<pad>');
});

test('encode wraps in <start>/<end> and cuts to maxLength; decode stops at <end>', () => {
  const v = Vocabulary.build(['a red circle above a blue square'], 1);
  const ids = v.encode('A red circle above a blue square.', 3);
  assert.equal(ids.length, 5);
  assert.equal(ids[0], START);
  assert.equal(ids.at(-1), END);
  assert.deepEqual(v.decode(ids), ['a', 'red', 'circle']);
  assert.deepEqual(v.decode([START, v.id('red'), END, v.id('blue')]), ['red']);
  assert.deepEqual(v.decode([v.id('red'), 999]), ['red', '<unk>']);
});

test('vocabulary JSON round trip, and a clear error for a foreign file', () => {
  const v = Vocabulary.build(['a red circle'], 1);
  const back = Vocabulary.fromJSON(JSON.parse(JSON.stringify(v.toJSON())));
  assert.deepEqual(back.words, v.words);
  assert.throws(() => Vocabulary.fromJSON({ words: 3 }, 'x/vocab.json'), /x\/vocab\.json: not a captioner vocabulary/);
  assert.throws(() => new Vocabulary(['a', 'b']), /word 0 must be <pad>/);
});
