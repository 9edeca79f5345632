/**
 * Shared set-up for the web app's tests: a tiny model trained in-process in a temp dir, a
 * server on a loopback port with one worker, and (from test/helpers/http-fixtures.ts) images of
 * every accepted format, hostile files and the clients that send them.
 */
import { rm } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import { startServer, type RunningServer, type ServeOptions } from '../../server/listen.ts';
import { makeTinyDataset } from '../helpers/tiny-data.ts';
import { trainTinyModel } from '../helpers/tiny-model.ts';

export {
  form,
  heavyPng,
  image,
  metricValue,
  multipartBytes,
  pngHeaderClaiming,
  rawRequest,
  readSse,
  startUpload,
  type RawResponse,
  type SseRecord,
} from '../helpers/http-fixtures.ts';

// The pure-JS backend's "install tfjs-node" banner would otherwise land in the test output.
tf.env().set('PROD', true);

export interface TrainedModel {
  modelDir: string;
  dataDir: string;
  cleanup(): Promise<void>;
}

/**
 * The tiny model trained for `steps` steps (one per epoch) on the tiny data set. The server's
 * tests need a real model that writes captions of a few words, not a good one: a high learning
 * rate gets there in 20 steps (e.g. "a blue triangle" for every image).
 */
export async function trainServerModel(steps = 20, overrides: Record<string, unknown> = {}): Promise<TrainedModel> {
  const { dir: dataDir } = await makeTinyDataset();
  const modelDir = await trainTinyModel(dataDir, steps, {
    validateEvery: steps,
    logEvery: 2,
    learningRate: 0.01,
    ...overrides,
  });
  return {
    modelDir,
    dataDir,
    async cleanup() {
      await rm(modelDir, { recursive: true, force: true });
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A server for `modelDir` on 127.0.0.1 (a free port), one worker unless told otherwise. */
export function serve(modelDir: string, overrides: Partial<ServeOptions> = {}): Promise<RunningServer> {
  return startServer({
    modelDir,
    port: 0,
    host: '127.0.0.1',
    workers: 1,
    maxQueue: 8,
    timeoutMs: 30_000,
    graceMs: 5_000,
    ...overrides,
  });
}

/**
 * Polls `probe` every 10 ms until it returns true or `ms` pass. `what` names the wait in the
 * timeout's message; a function is asked only then (e.g. for a child's stderr so far).
 */
export async function waitFor(
  probe: () => Promise<boolean> | boolean,
  ms = 10_000,
  what: string | (() => string) = 'condition',
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
