/**
 * What the browser bundle has in place of model/io/layers-io.ts, which reads a backbone's files
 * from disk. Only a new model with a backbone (training) loads one; a saved model brings its
 * backbone's topology in its checkpoint (backbone.json), so captioning never gets here.
 */
import type * as tf from '@tensorflow/tfjs';

export function loadLayersModelFromPath(path: string): Promise<tf.LayersModel> {
  return Promise.reject(new Error(`${path}: a backbone is read from files, which the browser cannot do`));
}

export function saveLayersModelToPath(): Promise<void> {
  return Promise.reject(new Error('saving a backbone writes files, which the browser cannot do'));
}
