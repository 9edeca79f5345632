/**
 * A tiny captioned data set made on the fly: coloured shapes on plain backgrounds, each with
 * captions that name them, in the project's data-set layout. Small enough to overfit in seconds.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { DatasetImage, Manifest } from '../../model/data/dataset.ts';
import { tempDirUntilExit } from './temp-dir.ts';

export const TINY_SCENES = [
  { colour: 'red', hex: '#e02020', shape: 'circle' },
  { colour: 'blue', hex: '#2040e0', shape: 'square' },
  { colour: 'green', hex: '#20b040', shape: 'triangle' },
  { colour: 'yellow', hex: '#e0d020', shape: 'circle' },
  { colour: 'red', hex: '#e02020', shape: 'square' },
  { colour: 'blue', hex: '#2040e0', shape: 'triangle' },
] as const;

function svgFor(hex: string, shape: string, size: number): string {
  const s = size;
  const body =
    shape === 'circle'
      ? `<circle cx="${s / 2}" cy="${s / 2}" r="${s * 0.35}" fill="${hex}"/>`
      : shape === 'square'
        ? `<rect x="${s * 0.2}" y="${s * 0.2}" width="${s * 0.6}" height="${s * 0.6}" fill="${hex}"/>`
        : `<polygon points="${s / 2},${s * 0.12} ${s * 0.88},${s * 0.85} ${s * 0.12},${s * 0.85}" fill="${hex}"/>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${s}" height="${s}"><rect width="100%" height="100%" fill="#f4f4f4"/>${body}</svg>`;
}

/**
 * Writes a data set of `TINY_SCENES` (all in "train", the first two also in "val") to `dir`, or to a
 * temp dir removed when the process exits.
 */
export async function makeTinyDataset(
  opts: { size?: number; dir?: string } = {},
): Promise<{ dir: string; manifest: Manifest }> {
  const size = opts.size ?? 16;
  const dir = opts.dir ?? tempDirUntilExit('captioner-tiny-');
  await mkdir(join(dir, 'images'), { recursive: true });
  const images: DatasetImage[] = [];
  for (const [i, scene] of TINY_SCENES.entries()) {
    const file = `images/${i}.png`;
    await sharp(Buffer.from(svgFor(scene.hex, scene.shape, size)))
      .png()
      .toFile(join(dir, file));
    const caption = `a ${scene.colour} ${scene.shape}`;
    images.push({ id: `img${i}`, file, split: 'train', captions: [caption] });
  }
  for (const i of [0, 1]) {
    const src = images[i]!;
    images.push({ ...src, id: `${src.id}-val`, split: 'val' });
  }
  const manifest: Manifest = { format: 'captioner-dataset', version: 1, name: 'tiny', source: 'test', images };
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  return { dir, manifest };
}
