/**
 * The browser bundle's entry (built by browser/build.ts, loaded by server/public/device.js):
 * captioning on the visitor's device with the same library the server runs, model/ on
 * `@tensorflow/tfjs`. WebGL where the browser has it, WebAssembly
 * (`@tensorflow/tfjs-backend-wasm`) otherwise, the pure-JavaScript CPU backend last. Only the
 * pure modules come in (model/nn, model/decode, model/text, model/familiarity's scoring): the
 * native kernels are never registered here, so the fused ops (model/runtime/fused.ts) run their
 * plain TF.js fallbacks.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { imagesToTensor } from '../model/data/pixels.ts';
import type { DecodeSettings } from '../model/decode/options.ts';
import { presentCaption } from '../model/decode/present.ts';
import { streamCaption } from '../model/decode/stream.ts';
import type { DeviceModel } from './load-model.ts';

export { loadDeviceModel, type DeviceModel } from './load-model.ts';
export { imagePixels } from './pixels.ts';

/** The browser backends, in the order 'auto' tries them. */
export const DEVICE_BACKENDS = ['webgl', 'wasm', 'cpu'] as const;
export type DeviceBackend = (typeof DEVICE_BACKENDS)[number];

/**
 * Chooses the TF.js backend: `preference` alone, or with 'auto' the first of DEVICE_BACKENDS
 * that initialises. `wasmBase` is where the .wasm files are served (a URL ending in '/').
 * Returns the backend's name; throws naming each failure when none works.
 */
export async function useBackend(preference: DeviceBackend | 'auto', wasmBase: URL): Promise<DeviceBackend> {
  tf.env().set('PROD', true);
  setWasmPaths(wasmBase.href);
  const order = preference === 'auto' ? DEVICE_BACKENDS : [preference];
  const failures: string[] = [];
  for (const name of order) {
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
      failures.push(`${name}: did not initialise`);
    } catch (err) {
      failures.push(`${name}: ${(err as Error).message}`);
    }
  }
  throw new Error(`no TF.js backend works in this browser (${failures.join('; ')})`);
}

/** The page's events, as the server's stream sends them (server/routes/api.ts): start, word or hypothesis, done. */
export type DeviceEvent =
  | {
      event: 'start';
      data: { model: string; backend: string; options: DecodeSettings; attention?: { grid: [number, number] } };
    }
  | { event: 'word'; data: { index: number; word: string; prob: number; attention?: number[] } }
  | { event: 'hypothesis'; data: { words: string[]; logProb: number; attention?: number[][] } }
  | { event: 'done'; data: ReturnType<typeof deviceResult> };

function deviceResult(
  loaded: DeviceModel,
  result: Parameters<typeof presentCaption>[0],
  options: DecodeSettings,
  decodeMs: number,
  familiarity: ReturnType<NonNullable<DeviceModel['familiarity']>['assess']>[number] | undefined,
) {
  const { attention, ...presented } = presentCaption(result);
  return {
    ...presented,
    model: loaded.name,
    backend: tf.getBackend(),
    /** Where it was captioned: the page says "this device". */
    device: true as const,
    options,
    timing: { queueMs: 0, decodeMs: Math.round(decodeMs) },
    ...(attention ? { attention } : {}),
    ...(familiarity ? { familiarity } : {}),
  };
}

/**
 * Captions one image's pixels (size × size × 3 uint8 RGB, from `imagePixels`) with `options`
 * (the model's language prior added, as the server adds it), yielding the events the server's
 * stream sends, so that the page draws both alike. The image's familiarity is scored once the
 * caption is done, as the server's worker does. Every tensor is freed, also when `signal` aborts.
 */
export async function* captionOnDevice(
  loaded: DeviceModel,
  pixels: Uint8Array,
  options: DecodeSettings,
  signal?: AbortSignal,
): AsyncGenerator<DeviceEvent> {
  const { model, prior, familiarity } = loaded;
  const started = performance.now();
  const grid = model.attentionGrid;
  yield {
    event: 'start',
    data: { model: loaded.name, backend: tf.getBackend(), options, ...(grid ? { attention: { grid } } : {}) },
  };
  // [1, size, size, 3] in [0, 1], scaled as in training.
  const image = imagesToTensor([pixels], model.config.imageSize);
  try {
    for await (const e of streamCaption(model, image, { ...options, prior }, signal)) {
      if (e.type === 'word') {
        yield {
          event: 'word',
          data: { index: e.index, word: e.word, prob: e.prob, ...(e.attention ? { attention: e.attention } : {}) },
        };
      } else if (e.type === 'hypothesis') {
        yield {
          event: 'hypothesis',
          data: { words: e.words, logProb: e.logProb, ...(e.attention ? { attention: e.attention } : {}) },
        };
      } else {
        const judged = familiarity?.assess(model.encoder, image)[0];
        yield { event: 'done', data: deviceResult(loaded, e.result, options, performance.now() - started, judged) };
      }
    }
  } finally {
    image.dispose();
  }
}

/** Tensors alive in TF.js's engine, for tests that check a caption frees what it made. */
export function numTensors(): number {
  return tf.memory().numTensors;
}
