/**
 * One caption worker thread: loads the model once, then captions the images the pool sends it,
 * one at a time, with model/decode/stream.ts `streamCaption`. The decoder yields to the event loop
 * between steps, so a `cancel` message is seen at the next step and stops the search there.
 * Started by server/workers.ts through worker-entry.js (which registers tsx).
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../model/runtime/backend.ts';
import { captionImages } from '../model/decode/decode.ts';
import { streamCaption } from '../model/decode/stream.ts';
import { imagesToTensor } from '../model/data/image.ts';
import { describeNative, nativeStatus } from '../model/runtime/native.ts';
import { loadModel, type LoadedModel } from '../model/io/load.ts';
import type { FromWorker, ToWorker, WorkerInit } from './workers.ts';

tf.env().set('PROD', true);

const port = parentPort;
if (!port) throw new Error('server/worker.ts must run in a worker thread');
const post = (msg: FromWorker) => port.postMessage(msg);
const init = workerData as WorkerInit;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

const running = new Map<number, AbortController>();

type JobReply = Extract<FromWorker, { type: 'result' | 'error' | 'cancelled' }>;

async function run(
  msg: Extract<ToWorker, { type: 'run' }>,
  { model, prior, familiarity }: LoadedModel,
): Promise<DistributiveOmit<JobReply, 'numTensors'>> {
  const controller = new AbortController();
  running.set(msg.id, controller);
  const started = performance.now();
  let image: tf.Tensor4D | null = null;
  try {
    // [1, size, size, 3] in [0, 1], scaled as in training.
    image = imagesToTensor([msg.pixels], model.config.imageSize);
    // The model's language prior goes with every request: its anti-LM weight is the default.
    for await (const event of streamCaption(model, image, { ...msg.options, prior }, controller.signal)) {
      if (event.type === 'done') {
        // Scored once the caption is done: a request cancelled part-way does not pay for it.
        const judged = familiarity?.assess(model.encoder, image)[0];
        return {
          type: 'result',
          id: msg.id,
          result: event.result,
          ...(judged ? { familiarity: judged } : {}),
          ms: performance.now() - started,
        };
      }
      if (msg.stream) post({ type: 'event', id: msg.id, event });
    }
    throw new Error('the decoder ended without a result');
  } catch (err) {
    if (controller.signal.aborted) return { type: 'cancelled', id: msg.id };
    return { type: 'error', id: msg.id, name: (err as Error).name, message: (err as Error).message };
  } finally {
    image?.dispose();
    running.delete(msg.id);
  }
}

try {
  const backend = await selectBackend(init.backend);
  const loaded = await loadModel(init.modelDir);
  const { model, prior } = loaded;
  // One throw-away caption so that the first real request does not pay the backend's warm-up.
  const blank = tf.zeros([1, model.config.imageSize, model.config.imageSize, 3]) as tf.Tensor4D;
  captionImages(model, blank, { strategy: 'greedy', maxLength: 2, prior });
  blank.dispose();
  port.on('message', (msg: ToWorker) => {
    if (msg.type === 'run') {
      if (msg.pixels.length !== model.config.imageSize * model.config.imageSize * 3) {
        post({
          type: 'error',
          id: msg.id,
          name: 'Error',
          message: `expected ${model.config.imageSize}² RGB pixels, got ${msg.pixels.length} bytes`,
          numTensors: tf.memory().numTensors,
        });
        return;
      }
      // The reply goes after the image tensor is freed, so that numTensors is the idle count
      // (after a cancelled or failed job too: a leak on those paths shows as well).
      void run(msg, loaded).then((reply) => post({ ...reply, numTensors: tf.memory().numTensors }));
    } else if (msg.type === 'cancel') {
      running.get(msg.id)?.abort();
    }
  });
  post({
    type: 'ready',
    backend,
    backendDetail:
      backend === 'cpu' ? describeNative(nativeStatus() ?? { enabled: false, kernels: [], detail: 'not tried' }) : '',
    model: { config: model.config, vocabSize: model.vocab.size, attentionGrid: model.attentionGrid },
    numTensors: tf.memory().numTensors,
  });
} catch (err) {
  post({ type: 'fatal', name: (err as Error).name, message: (err as Error).message });
}
