/** The one first-come-first-served byte budget (model/util/byte-budget.ts) of the server's and the batch's decodes. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BudgetWaitCancelledError, ByteBudget } from '../../../model/util/byte-budget.ts';

const tick = () => new Promise((r) => setImmediate(r));

test('a byte budget: first come first served; what does not fit waits; one request over it runs alone', async () => {
  const budget = new ByteBudget(100);
  const order: string[] = [];
  await budget.acquire(60);
  await budget.acquire(40); // fits exactly
  const big = budget.acquire(500).then(() => order.push('big'));
  const small = budget.acquire(10).then(() => order.push('small')); // would fit after one release, but waits its turn
  await tick();
  assert.deepEqual(order, []);
  budget.release(60);
  await tick();
  assert.deepEqual(order, [], 'the first in line (500) does not fit while 40 are held');
  budget.release(40);
  await big;
  assert.equal(budget.stats().bytes, 500, 'over the limit, alone');
  budget.release(500);
  await small;
  assert.deepEqual(order, ['big', 'small']);
  assert.equal(budget.stats().peakBytes, 500);
});

test('a waiter whose signal aborts is dropped, and the ones it held back start', async () => {
  const budget = new ByteBudget(100);
  await budget.acquire(60);
  const leaving = new AbortController();
  const dropped = budget.acquire(60, leaving.signal);
  const behind = budget.acquire(30);
  await tick();
  assert.deepEqual(budget.stats(), { running: 1, waiting: 2, bytes: 60, peakBytes: 60 });
  leaving.abort();
  await assert.rejects(dropped, BudgetWaitCancelledError);
  await behind; // 30 fits beside 60 once the 60 ahead of it has gone
  assert.deepEqual(budget.stats(), { running: 2, waiting: 0, bytes: 90, peakBytes: 90 });
  let ran = false;
  await assert.rejects(
    budget.run(1, AbortSignal.abort(), async () => (ran = true)),
    BudgetWaitCancelledError,
    'a signal aborted already: the task does not run',
  );
  assert.equal(ran, false);
});

test('run gives the bytes back when its task fails; nonsense sizes are refused', async () => {
  const budget = new ByteBudget(100);
  await assert.rejects(
    budget.run(70, undefined, () => Promise.reject(new Error('decode failed'))),
    /decode failed/,
  );
  assert.deepEqual(budget.stats(), { running: 0, waiting: 0, bytes: 0, peakBytes: 70 });
  await assert.rejects(budget.acquire(-1), RangeError);
  await assert.rejects(budget.acquire(Number.NaN), RangeError);
  assert.throws(() => new ByteBudget(0), RangeError);
});
