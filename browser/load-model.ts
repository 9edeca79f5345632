/**
 * A model for captioning in the browser: its checkpoint's files fetched from a base URL (the
 * server's /device/model/ or an exported site's device/model/) and decoded with the same code the
 * server reads them with from disk (model/io/model-files.ts, model/familiarity/format.ts,
 * LanguagePrior.fromJSON). manifest.json lists the files and their sizes, for the progress bar.
 * The files are fetched with the browser's HTTP cache: a second visit revalidates them and
 * downloads nothing that has not changed.
 */
import * as tf from '@tensorflow/tfjs';
import { LanguagePrior } from '../model/decode/prior.ts';
import { FamiliarityModel } from '../model/familiarity/familiarity.ts';
import { familiarityParams, familiarityWeightsFile, parseFamiliarityJson } from '../model/familiarity/format.ts';
import { CheckpointError, decodeWeightData, weightsGroup, withAddedModelKeys } from '../model/io/model-files.ts';
import type { SavedConfig, WeightsManifestJson } from '../model/io/model-files.ts';
import { Captioner } from '../model/nn/captioner.ts';
import { Vocabulary } from '../model/text/vocab.ts';
import { DEVICE_MANIFEST, type DeviceManifest } from './manifest.ts';

/** A model ready to caption on this device, with what its directory holds for decoding it (as model/io/load.ts). */
export interface DeviceModel {
  name: string;
  model: Captioner;
  prior: LanguagePrior | null;
  familiarity: FamiliarityModel | null;
  /** The bytes its files took to download (or to read from the cache). */
  bytes: number;
}

/** Bytes so far and in all, as the files arrive. */
export type Progress = (loaded: number, total: number) => void;

async function fetchOk(url: URL): Promise<Response> {
  const res = await fetch(url);
  if (!res.ok) throw new CheckpointError(`${url.href}: the server answered ${res.status}`);
  return res;
}

/** Reads a response's body, reporting each chunk's length. */
async function readBytes(res: Response, onChunk: (n: number) => void): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.byteLength;
    onChunk(value.byteLength);
  }
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

function parseJson<T>(bytes: Uint8Array, url: URL): T {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch (err) {
    throw new CheckpointError(`${url.href}: invalid JSON (${(err as Error).message})`);
  }
}

/**
 * Fetches and builds the model whose files are under `base` (a URL ending in '/'), reporting
 * progress over the bytes manifest.json lists.
 */
export async function loadDeviceModel(base: URL, onProgress: Progress = () => {}): Promise<DeviceModel> {
  const manifestUrl = new URL(DEVICE_MANIFEST, base);
  const manifest = (await (await fetchOk(manifestUrl)).json()) as DeviceManifest;
  if (manifest?.format !== 'captioner-device-model' || typeof manifest.files !== 'object')
    throw new CheckpointError(`${manifestUrl.href}: not a captioner device manifest`);
  const total = Object.values(manifest.files).reduce((a, b) => a + b, 0);
  let loaded = 0;
  onProgress(0, total);
  const files = new Map<string, Uint8Array>();
  // Every file the manifest lists, at once: the weights are most of the bytes.
  await Promise.all(
    Object.keys(manifest.files).map(async (name) => {
      const bytes = await readBytes(await fetchOk(new URL(name, base)), (n) => {
        loaded += n;
        onProgress(loaded, total);
      });
      files.set(name, bytes);
    }),
  );
  const file = (name: string) => {
    const bytes = files.get(name);
    if (!bytes) throw new CheckpointError(`${manifestUrl.href}: lists no ${name}`);
    return bytes;
  };
  const json = <T>(name: string) => parseJson<T>(file(name), new URL(name, base));
  const at = (name: string) => new URL(name, base).href;

  const config = withAddedModelKeys(json<SavedConfig>('config.json'), at('config.json'));
  const vocab = Vocabulary.fromJSON(json('vocab.json'), at('vocab.json'));
  const group = weightsGroup(json<WeightsManifestJson>('weights.json'), at('weights.json'));
  const data = concat(group.paths.map(file));
  const weights = decodeWeightData(group, data, at(group.paths[0] ?? 'weights.bin'));
  try {
    const backbone = config.model.backbone ? json<object>('backbone.json') : null;
    const model = await Captioner.restore(config.model, vocab, weights, backbone);
    const prior = files.has('language-prior.json')
      ? LanguagePrior.fromJSON(json('language-prior.json'), vocab, at('language-prior.json'))
      : null;
    let familiarity: FamiliarityModel | null = null;
    if (files.has('familiarity.json')) {
      const fj = parseFamiliarityJson(new TextDecoder().decode(file('familiarity.json')), at('familiarity.json'));
      const bin = familiarityWeightsFile(fj);
      familiarity = new FamiliarityModel(familiarityParams(fj, file(bin), at(bin)));
    }
    return { name: manifest.name, model, prior, familiarity, bytes: loaded };
  } finally {
    tf.dispose(Object.values(weights));
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
