/**
 * Flickr8k as distributed (Hodosh et al. 2013): Flickr8k.token.txt, one caption a line as
 * `IMAGE.jpg#N<TAB>caption`, and the split lists Flickr_8k.trainImages.txt, .devImages.txt and
 * .testImages.txt, one image file name a line. Images in no list are left out (the token file
 * has a few); listed images without captions are reported.
 */
import { dirname, join } from 'node:path';
import type { Issue } from '../build.ts';
import { cleanCaptions, exists, readLines, recordError, type ImportedImage } from './read.ts';

export interface Flickr8kOptions {
  captions: string;
  images: string;
  /** Split lists; by default the standard names beside the captions file. */
  trainList?: string;
  valList?: string;
  testList?: string;
}

/** Reads Flickr8k; returns the images and how many captioned images were in no split list. */
export async function readFlickr8k(
  opts: Flickr8kOptions,
  issues: Issue[],
): Promise<{ images: ImportedImage[]; unlisted: number }> {
  const dir = dirname(opts.captions);
  const captions = new Map<string, string[]>();
  const lines = await readLines(opts.captions, issues);
  lines.forEach((line, i) => {
    if (line === null || !line.trim()) return;
    const tab = line.indexOf('\t');
    const key = tab < 0 ? '' : line.slice(0, tab);
    const hash = key.lastIndexOf('#');
    if (tab < 0 || hash <= 0) throw recordError(opts.captions, `line ${i + 1}`, 'expected "IMAGE.jpg#N<TAB>caption"');
    const image = key.slice(0, hash);
    const kept = cleanCaptions([line.slice(tab + 1)], opts.captions, `line ${i + 1} (${image})`, issues);
    captions.set(image, [...(captions.get(image) ?? []), ...kept]);
  });

  const lists: [string, string][] = [
    ['train', opts.trainList ?? join(dir, 'Flickr_8k.trainImages.txt')],
    ['val', opts.valList ?? join(dir, 'Flickr_8k.devImages.txt')],
    ['test', opts.testList ?? join(dir, 'Flickr_8k.testImages.txt')],
  ];
  const images: ImportedImage[] = [];
  const listed = new Map<string, string>();
  for (const [split, list] of lists) {
    if (!(await exists(list)))
      throw recordError(list, 'file', `the ${split} split list is missing (give it with --${split}-list)`);
    const names = await readLines(list, issues);
    for (const [i, raw] of names.entries()) {
      const name = raw?.trim();
      if (!name) continue;
      const prior = listed.get(name);
      if (prior) throw recordError(list, `line ${i + 1}`, `image ${name} is already listed in ${prior}`);
      listed.set(name, list);
      const caps = captions.get(name);
      if (!caps?.length) {
        issues.push({
          file: list,
          record: `line ${i + 1} (${name})`,
          problem: `no captions in ${opts.captions}; image skipped`,
        });
        continue;
      }
      images.push({ id: name, split, captions: caps, path: join(opts.images, name) });
    }
  }
  const unlisted = [...captions.keys()].filter((name) => !listed.has(name)).length;
  return { images, unlisted };
}
