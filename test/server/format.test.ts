/** How the page writes a probability. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
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
