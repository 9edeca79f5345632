/** The CLI registers only the verb it runs (its libraries load lazily), or every verb when none is named. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COMMANDS, commandsFor } from '../../cli/commands/index.ts';

test("each entry's name is its module's verb, so that the verb a user types finds its module", async () => {
  for (const entry of COMMANDS) {
    const cmd = await entry.load();
    assert.equal(cmd.command.split(' ')[0], entry.name);
  }
  assert.equal(new Set(COMMANDS.map((c) => c.name)).size, COMMANDS.length);
});

test('a named verb registers alone; help, a typo or a global option first register them all', async () => {
  const verbs = async (args: string[]) => (await commandsFor(args)).map((c) => c.command.split(' ')[0]);
  assert.deepEqual(await verbs(['score', '--json']), ['score']);
  assert.deepEqual(await verbs(['export-site', '--help']), ['export-site']);
  const all = COMMANDS.map((c) => c.name);
  assert.deepEqual(await verbs(['--help']), all);
  assert.deepEqual(await verbs(['sccore']), all);
  assert.deepEqual(await verbs(['--backend', 'cpu', 'train']), all);
  assert.deepEqual(await verbs([]), all);
});
