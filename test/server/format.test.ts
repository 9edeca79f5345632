/** How the page writes a probability, and what it says raised the training loss. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SavedConfig } from '../../model/io/checkpoint.ts';
import { lossRaisedBy } from '../../server/model-info.ts';
import { formatPercent } from '../../server/views.ts';

test('formatPercent: one decimal, none near 100 %, two significant digits below 0.1 % (a caption is never "0%")', () => {
  assert.equal(formatPercent(0.5), '50.0%');
  assert.equal(formatPercent(0.0123), '1.2%');
  assert.equal(formatPercent(0.996), '100%');
  assert.equal(formatPercent(1), '100%');
  assert.equal(formatPercent(0.00032), '0.032%');
  assert.equal(formatPercent(Math.exp(-8.04)), '0.032%');
  assert.equal(formatPercent(1e-9), '<0.0001%');
  assert.equal(formatPercent(0), '0%');
});

test('formatPercent with digits: a rate with exactly that many decimals, never rounded up to 100 %', () => {
  assert.equal(formatPercent(0.965027700831025, 1), '96.5%');
  assert.equal(formatPercent(0.998, 1), '99.8%');
  assert.equal(formatPercent(1, 1), '100.0%');
  assert.equal(formatPercent(0, 1), '0.0%');
  assert.equal(formatPercent(0.8281893004115226, 2), '82.82%');
});

test('lossRaisedBy names every setting that raises the logged training loss above plain cross-entropy', () => {
  const saved = (train: Record<string, number | string>) =>
    ({ model: {}, train, versions: {} }) as unknown as SavedConfig;
  assert.equal(lossRaisedBy(saved({})), null);
  assert.equal(lossRaisedBy(saved({ labelSmoothing: 0, wordDropout: 0, wordSubstitution: 0 })), null);
  assert.equal(lossRaisedBy(saved({ labelSmoothing: 0.2 })), 'label smoothing 0.2');
  assert.equal(
    lossRaisedBy(saved({ labelSmoothing: 0.2, wordSubstitution: 0.25 })),
    'label smoothing 0.2 and word substitution 0.25',
  );
  assert.equal(
    lossRaisedBy(saved({ labelSmoothing: 0.2, wordSubstitution: 0.25, wordDropout: 0.1 })),
    'label smoothing 0.2, word substitution 0.25 and word dropout 0.1',
  );
  assert.equal(
    lossRaisedBy(saved({ labelSmoothing: 0.2, wordSubstitution: 0.25, wordSubstitutionRates: 'red=0.75' })),
    'label smoothing 0.2 and word substitution 0.25 (red=0.75)',
  );
  assert.equal(
    lossRaisedBy(saved({ wordSubstitution: 0, wordSubstitutionRates: 'red=0.75' })),
    'word substitution 0 (red=0.75)',
  );
});
