/**
 * One training worker thread of `captioner experiment run --jobs N` (experiment/run.ts): selects
 * the backend it is told, then trains the runs it is sent, one at a time, with the same
 * `trainRun` the runner calls in-process, relaying its log lines and progress. The stop flag is
 * shared memory the main thread sets on Ctrl-C: a training loop reads it after every step, so
 * it needs no turn of this thread's event loop to be seen.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { selectBackend } from '../model/runtime/backend.ts';
import { trainRun, type TrainWorkerInit, type TrainWorkerReply, type TrainWorkerRequest } from './run.ts';

const port = parentPort;
if (!port) throw new Error('experiment/train-worker.ts must run in a worker thread');
const init = workerData as TrainWorkerInit;
const stop = new Int32Array(init.stop);
const post = (msg: TrainWorkerReply) => port.postMessage(msg);

await selectBackend(init.backend);
port.on('message', (msg: TrainWorkerRequest) => {
  void trainRun(msg.out, msg.data, msg.run, msg.at, {
    log: (line) => post({ type: 'log', line }),
    progress: (p) => post({ type: 'progress', step: p.step, totalSteps: p.totalSteps }),
    stopped: () => Atomics.load(stop, 0) === 1,
  }).then((ended) => post({ type: 'ended', ended }));
});
