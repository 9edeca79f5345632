/**
 * The familiarity figures of a calibrated model (docs/familiarity.md): the share of each split
 * of a data set that is familiar, of every image of further data sets (e.g. fresh shapes scenes
 * of a seed never used), and each photograph's score.
 *
 *   node --import tsx scripts/familiarity-figures.ts --model models/default --data data/shapes-v2 \
 *       --splits val,test,test-compositional --extra data/shapes-v2-seed9001 \
 *       --photos /usr/share/backgrounds/mate/nature/*.jpg
 */
import { parseArgs } from 'node:util';
import { basename } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../model/runtime/backend.ts';
import { loadModel } from '../model/io/load.ts';
import { ImageCache, readManifest, type DatasetImage } from '../model/data/dataset.ts';
import { imagesToTensor, loadImagePixels } from '../model/data/image.ts';
import type { Familiarity } from '../model/familiarity/familiarity.ts';

const { values, positionals } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/default' },
    data: { type: 'string', multiple: true, default: [] },
    extra: { type: 'string', multiple: true, default: [] },
    photos: { type: 'string', multiple: true, default: [] },
    /** The splits of --data to score (default: every split). */
    splits: { type: 'string' },
  },
  allowPositionals: true,
});

await selectBackend();
const { model, familiarity } = await loadModel(values.model);
if (!familiarity) throw new Error(`${values.model}: no familiarity calibration (run captioner calibrate)`);
const size = model.config.imageSize;

async function judge(dataDir: string, images: readonly DatasetImage[]): Promise<Familiarity[]> {
  const cache = await ImageCache.load(dataDir, images, size);
  const out: Familiarity[] = [];
  for (let s = 0; s < images.length; s += 256) {
    const batch = images.slice(s, s + 256);
    const t = tf.tensor4d(cache.batch(batch.map((i) => i.id)), [batch.length, size, size, 3]);
    out.push(...familiarity!.assess(model.encoder, t));
    t.dispose();
  }
  return out;
}

/** A photograph's name: its file's, or a KDE wallpaper's folder (NAME/contents/images/WxH.jpg). */
const photoName = (path: string) => basename(path.replace(/\/contents\/images\/[^/]+$/, ''));

const line = (what: string, judged: Familiarity[]) => {
  const n = judged.filter((j) => j.familiar).length;
  console.log(`| ${what} | ${judged.length} | ${n} (${((n / judged.length) * 100).toFixed(1)} %) |`);
};

console.log(`threshold ${familiarity.params.threshold.toFixed(3)} (${familiarity.params.features})\n`);
console.log('| images | count | familiar |\n| --- | --- | --- |');
for (const dir of values.data) {
  const manifest = await readManifest(dir);
  const splits = values.splits?.split(',') ?? [...new Set(manifest.images.map((i) => i.split))];
  for (const split of splits) {
    line(
      `${basename(dir)} ${split}`,
      await judge(
        dir,
        manifest.images.filter((i) => i.split === split),
      ),
    );
  }
}
for (const dir of values.extra) line(`${basename(dir)} (all)`, await judge(dir, (await readManifest(dir)).images));
const photos = [...values.photos, ...positionals];
if (photos.length) {
  const pixels = await Promise.all(photos.map((p) => loadImagePixels(p, size)));
  const t = imagesToTensor(pixels, size);
  const judged = familiarity.assess(model.encoder, t);
  t.dispose();
  line('photographs', judged);
  console.log('\n| photograph | score | flagged |\n| --- | --- | --- |');
  photos.forEach((p, i) =>
    console.log(`| ${photoName(p)} | ${judged[i]!.score.toFixed(2)} | ${judged[i]!.familiar ? 'no' : 'yes'} |`),
  );
}
model.dispose();
