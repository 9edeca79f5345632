/**
 * Reading a TF.js LayersModel (model.json + weight shards) from a local path. The pure-JS
 * `@tensorflow/tfjs` package has no file:// loader (that lives in tfjs-node), and the
 * project's rule is that nothing is fetched at run time, so the backbone is read from disk here.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from './fsutil.ts';

interface ModelJson {
  modelTopology: object;
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
}

/** Loads a LayersModel saved with `model.save()` in the TF.js layers format, from `path` (model.json or its folder). */
export async function loadLayersModelFromPath(path: string): Promise<tf.LayersModel> {
  const jsonPath = path.endsWith('.json') ? path : join(path, 'model.json');
  let json: ModelJson;
  try {
    json = JSON.parse(await readFile(jsonPath, 'utf8')) as ModelJson;
  } catch (err) {
    throw new Error(`${jsonPath}: cannot read a TF.js LayersModel (${(err as Error).message})`, { cause: err });
  }
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new Error(`${jsonPath}: not a TF.js LayersModel (needs "modelTopology" and "weightsManifest")`);
  }
  const specs: tf.io.WeightsManifestEntry[] = [];
  const buffers: Buffer[] = [];
  for (const group of json.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) buffers.push(await readFile(join(dirname(jsonPath), p)));
  }
  const data = Buffer.concat(buffers);
  const weightData = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  return tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: specs, weightData, format: json.format }),
  );
}

/** Saves a LayersModel in the same layout (model.json + one weights.bin), e.g. for tests and tools. */
export async function saveLayersModelToPath(model: tf.LayersModel, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData as ArrayBuffer;
      await writeFileAtomic(join(dir, 'weights.bin'), Buffer.from(data));
      const json: ModelJson = {
        modelTopology: artifacts.modelTopology as object,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
      };
      await writeFileAtomic(join(dir, 'model.json'), JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
}
