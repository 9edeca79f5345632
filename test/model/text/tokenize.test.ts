/**
 * ptbTokenize against the behaviour of coco-caption's tokenizer (Stanford PTBTokenizer with
 * -preserveLines -lowerCase, then its punctuation list), case by case.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ptbTokenize } from '../../../model/text/tokenize.ts';

const tok = (s: string) => ptbTokenize(s).join(' ');

test('ordinary captions: lower case, final period and commas dropped', () => {
  assert.equal(tok('A man riding a wave on top of a surfboard.'), 'a man riding a wave on top of a surfboard');
  assert.equal(tok('Two dogs, one brown; one white!'), 'two dogs one brown one white');
  assert.equal(tok('  '), '');
  assert.equal(tok('...'), '');
});

test('clitics and PTB assimilations', () => {
  assert.equal(tok("The dog's ball isn't red"), "the dog 's ball is n't red");
  assert.equal(tok('I cannot believe he is gonna eat'), 'i can not believe he is gon na eat');
  assert.equal(tok("Two dogs' toys"), 'two dogs toys');
  assert.equal(tok("'tis a 'quoted' word"), "'t is a quoted word");
});

test('numbers, currency and percentages', () => {
  assert.equal(tok('3,000 people at 10:30, paying $5 for 50% off'), '3,000 people at 10:30 paying $ 5 for 50 % off');
  assert.equal(tok('a 2.5 inch screw.'), 'a 2.5 inch screw');
});

test('abbreviations and acronyms keep their period', () => {
  assert.equal(tok('A sign on Main St.'), 'a sign on main st.');
  assert.equal(tok('Mr. Smith and the U.S. flag at 5 p.m.'), 'mr. smith and the u.s. flag at 5 p.m.');
});

test('dashes and ellipses are punctuation; hyphenated words stay whole', () => {
  assert.equal(tok('a t-shirt -- and people... waiting'), 'a t-shirt and people waiting');
  assert.equal(tok('a cat - a dog'), 'a cat a dog');
});

test('quotes are dropped; brackets stay as -lrb- -rrb- (coco-caption lists them in upper case only)', () => {
  assert.equal(tok('A "happy" dog'), 'a happy dog');
  assert.equal(tok('a dog (brown) [left] {x}'), 'a dog -lrb- brown -rrb- -lsb- left -rsb- -lcb- x -rcb-');
});
