/** Test set-up shared by every file that runs the model: the backend the CLI would pick. */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../model/runtime/backend.ts';

export async function setupBackend(): Promise<typeof tf> {
  await selectBackend();
  return tf;
}

/** Largest |a − b| / max(|b|, floor) over two arrays of equal length. */
export function maxRelativeError(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-3): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++)
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), floor));
  return worst;
}
