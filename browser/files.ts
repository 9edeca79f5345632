/**
 * Which files of a model directory the browser fetches, with their sizes (the manifest the page's
 * progress bar reads, browser/manifest.ts): the checkpoint's config, vocabulary, weights and, when
 * present, backbone, language prior and familiarity calibration. Shared by the server's
 * /device/model/ route and `captioner export-site`.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { readCheckpointConfig } from '../model/io/checkpoint.ts';
import { CheckpointError, MODEL_FILES, weightsGroup, type WeightsManifestJson } from '../model/io/model-files.ts';
import type { DeviceManifest } from './manifest.ts';

/** A model's files for the browser: the checkpoint directory they are in, and the manifest listing them. */
export interface DeviceModelFiles {
  dir: string;
  manifest: DeviceManifest;
}

async function size(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** The files the browser needs of the model in `modelDir` (its best checkpoint), checked to be there. */
export async function deviceModelFiles(
  modelDir: string,
  name = basename(resolve(modelDir)),
): Promise<DeviceModelFiles> {
  const { dir } = await readCheckpointConfig(modelDir, 'best');
  const weightsJson = join(dir, 'weights.json');
  let manifestJson: WeightsManifestJson;
  try {
    manifestJson = JSON.parse(await readFile(weightsJson, 'utf8')) as WeightsManifestJson;
  } catch (err) {
    throw new CheckpointError(`${weightsJson}: cannot read (${(err as Error).message})`);
  }
  const names = [...MODEL_FILES.required, ...weightsGroup(manifestJson, weightsJson).paths];
  const files: Record<string, number> = {};
  for (const file of names) {
    const bytes = await size(join(dir, file));
    if (bytes === null) throw new CheckpointError(`${join(dir, file)}: missing (the browser needs it)`);
    files[file] = bytes;
  }
  for (const file of MODEL_FILES.optional) {
    const bytes = await size(join(dir, file));
    if (bytes !== null) files[file] = bytes;
  }
  return { dir: resolve(dir), manifest: { format: 'captioner-device-model', version: 1, name, files } };
}
