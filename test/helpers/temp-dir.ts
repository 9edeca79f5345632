/**
 * Temporary directories for test helpers that hand a directory to their caller: removed when the
 * test file's process exits (each test file runs in its own process), so a helper's data set or
 * model does not outlive the run that needed it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];
process.on('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

export function tempDirUntilExit(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
