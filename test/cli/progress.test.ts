/** The progress bar's rate counts only the units done since it started: a resumed run's steps/s is not inflated. */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { progressBar } from '../../cli/progress.ts';

test('a bar that starts at unit 1000 of 2000 reports the rate of the units it saw, not of all 1001', async () => {
  let out = '';
  const stream = new Writable({
    write(chunk, _enc, done) {
      out += String(chunk);
      done();
    },
  });
  const bar = progressBar(2000, 'training {bar} {value}/{total} steps', 'steps', { startAt: 1000, stream });
  await sleep(100);
  bar.update(1001);
  bar.stop();
  const rates = [...out.matchAll(/([\d.]+) steps\/s/g)].map((m) => Number(m[1]));
  const last = rates.at(-1)!;
  assert.match(out, /1001\/2000 steps/);
  // One step in at least 0.1 s: at most 10 steps/s (counting all 1001 would give 10,000).
  assert.ok(last > 0 && last <= 10, `rate ${last} in ${JSON.stringify(out)}`);
});
