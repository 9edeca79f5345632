// A training worker thread's entry (experiment/run.ts, `--jobs N`): registers tsx's loader in this
// thread (the project runs TypeScript without a build step), then runs the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./train-worker.ts');
