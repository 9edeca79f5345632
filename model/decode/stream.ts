/**
 * Streaming: one image captioned step by step, each step's news yielded as it comes, with the
 * event loop free between steps (the server's workers see a cancel there). It runs the same
 * search objects as the batched call, so it ends in the same caption.
 */
import type * as tf from '@tensorflow/tfjs';
import { createSearch } from './decode.ts';
import { DecodeOptionsError, resolveDecodeOptions, type DecodeOptions } from './options.ts';
import type { StepModel, StreamEvent } from './search-state.ts';

/**
 * Resolves once the event loop has run what was waiting: setImmediate in Node (no 1 ms timer
 * floor), a message through a MessageChannel in a browser (setTimeout is clamped to 4 ms there
 * once nested).
 */
function nextTick(): Promise<void> {
  return new Promise((resolve) => {
    if (typeof setImmediate === 'function') {
      setImmediate(resolve);
      return;
    }
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

/**
 * Captions one image [1, size, size, 3], yielding as it goes: for greedy and sampled decoding a
 * `word` event as soon as each word is chosen; for beam search the best live hypothesis after
 * each step; then `done` with the same result `captionImages` returns. Between steps it yields
 * to the event loop. When `signal` aborts it stops at the next step and throws the signal's
 * reason (an AbortError); ending the iteration early (`break`, `return()`) stops it too. Either
 * way every tensor it held is freed.
 */
export async function* streamCaption(
  model: StepModel,
  image: tf.Tensor4D,
  options: DecodeOptions,
  signal?: AbortSignal,
): AsyncGenerator<StreamEvent> {
  if (image.shape[0] !== 1)
    throw new DecodeOptionsError(`streamCaption decodes one image: expected a batch of 1, got ${image.shape[0]}`);
  const o = resolveDecodeOptions(model, options);
  signal?.throwIfAborted();
  const search = createSearch(model, image, o);
  try {
    while (!search.done) {
      search.advance();
      yield* search.events();
      await nextTick();
      signal?.throwIfAborted();
    }
    yield { type: 'done', result: search.results()[0]! };
  } finally {
    search.dispose();
  }
}
