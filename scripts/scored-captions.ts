/**
 * What the scripts that read a `captioner eval` run back share: each caption of one split
 * (EVAL_DIR/results-SPLIT.json) beside its scene's ground truth from the shapes data set's
 * manifest. An image the manifest does not have (or has without a scene) is an error naming it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Scene } from '../data-scripts/shapes/semantics.ts';

export function readScoredCaptions(
  evalDir: string,
  dataDir: string,
  split: string,
): { imageId: string; caption: string; truth: Scene }[] {
  const manifestFile = join(dataDir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { images: { id: string; scene?: Scene }[] };
  const scenes = new Map(manifest.images.map((i) => [i.id, i.scene]));
  const resultsFile = join(evalDir, `results-${split}.json`);
  const results = JSON.parse(readFileSync(resultsFile, 'utf8')) as { image_id: string | number; caption: string }[];
  return results.map((r) => {
    const truth = scenes.get(String(r.image_id));
    if (!truth) throw new Error(`${resultsFile}: image ${r.image_id} is not in ${manifestFile} (or has no scene)`);
    return { imageId: String(r.image_id), caption: r.caption, truth };
  });
}
