/** Greyscale augmentation: grey rows keep their luminance, lose their colour and their colour words' loss. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COLOUR_WORDS, colourWordIds, greyscaleRows } from '../../../model/train/greyscale.ts';
import { checkObjective, TRAIN_DEFAULTS } from '../../../model/train/config.ts';
import { PAD, Vocabulary } from '../../../model/text/vocab.ts';
import { Rng } from '../../../model/util/rng.ts';

const vocab = Vocabulary.build(['a red circle', 'a blue square', 'a big grey star'], 1);
const id = (w: string) => vocab.id(w);

/** Two images of 2 × 2 pixels, the first all red, the second all blue. */
function batch() {
  const images = new Float32Array([...Array(4).fill([1, 0, 0]).flat(), ...Array(4).fill([0, 0, 1]).flat()]);
  const targets = new Int32Array([id('red'), id('circle'), PAD, id('blue'), id('square'), PAD]);
  return { images, targets };
}

test("colourWordIds: the vocabulary's colour names, achromatic ones too, and nothing else", () => {
  assert.deepEqual([...colourWordIds(vocab)].map((i) => vocab.words[i]).sort(), ['blue', 'grey', 'red']);
  assert.ok(COLOUR_WORDS.includes('gray') && !COLOUR_WORDS.includes('circle'));
});

test('greyscaleRows at rate 1: every pixel becomes its BT.601 luminance and every colour target a pad', () => {
  const { images, targets } = batch();
  const rows = greyscaleRows(images, targets, 2, 1, colourWordIds(vocab), new Rng(1));
  assert.deepEqual(rows, [0, 1]);
  assert.ok(
    images.subarray(0, 12).every((v) => Math.abs(v - 0.299) < 1e-6),
    'red turns 0.299 grey',
  );
  assert.ok(
    images.subarray(12).every((v) => Math.abs(v - 0.114) < 1e-6),
    'blue turns 0.114 grey',
  );
  assert.deepEqual([...targets], [PAD, id('circle'), PAD, PAD, id('square'), PAD]);
});

test('greyscaleRows at rate 0 changes nothing; in between, only the rows drawn change, the same for the same seed', () => {
  const untouched = batch();
  const { images, targets } = batch();
  assert.deepEqual(greyscaleRows(images, targets, 2, 0, colourWordIds(vocab), new Rng(1)), []);
  assert.deepEqual([images, targets], [untouched.images, untouched.targets]);

  const seen = new Set<string>();
  for (let seed = 1; seed <= 20; seed++) {
    const a = batch();
    const rows = greyscaleRows(a.images, a.targets, 2, 0.5, colourWordIds(vocab), new Rng(seed));
    const again = batch();
    assert.deepEqual(greyscaleRows(again.images, again.targets, 2, 0.5, colourWordIds(vocab), new Rng(seed)), rows);
    seen.add(rows.join());
    for (const b of [0, 1]) {
      const changed = a.targets[b * 3] === PAD;
      assert.equal(changed, rows.includes(b), `row ${b}'s colour target masked only when the row was drawn`);
      assert.equal(a.images[b * 12 + 1] !== untouched.images[b * 12 + 1], rows.includes(b));
    }
  }
  assert.ok(seen.size >= 3, `rate 0.5 draws different rows for different seeds: ${[...seen].join(' | ')}`);
});

test('greyscale with the loss on pads is a configuration error naming both (its masked colour targets would be trained as <pad>)', () => {
  const config = { ...TRAIN_DEFAULTS, data: 'd', out: 'o', greyscale: 0.25 };
  assert.doesNotThrow(() => checkObjective(config));
  assert.throws(() => checkObjective({ ...config, lossOnPadding: true }), /"greyscale" .*"lossOnPadding"/);
});
