/** Reading and writing coco-caption's annotation and results files; every malformed input is a named error. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CocoFileError,
  cocoImageId,
  emptyCandidates,
  matchCaptions,
  parseCocoAnnotations,
  parseCocoResults,
  readCaptionPairs,
  toCocoAnnotations,
  toCocoResults,
} from '../../eval/coco-files.ts';
import { scoreCaptions } from '../../eval/score.ts';

const refsDoc = {
  images: [{ id: 1 }, { id: 2 }],
  annotations: [
    { image_id: 2, caption: 'a green triangle' },
    { image_id: 1, caption: 'a red circle' },
    { image_id: 1, caption: 'a red disc' },
  ],
};

test('pairs results with references by image id, in the order of "images", whatever the results order', () => {
  const refs = parseCocoAnnotations(refsDoc, 'refs.json');
  const results = parseCocoResults(
    [
      { image_id: 2, caption: 'a triangle' },
      { image_id: 1, caption: 'a circle' },
    ],
    'res.json',
  );
  assert.deepEqual(matchCaptions(refs, results, 'refs.json', 'res.json'), [
    { id: 1, candidate: 'a circle', references: ['a red circle', 'a red disc'] },
    { id: 2, candidate: 'a triangle', references: ['a green triangle'] },
  ]);
});

test('42 and "42" are different image ids, as in Python', () => {
  const refs = parseCocoAnnotations({ images: [{ id: 42 }], annotations: [{ image_id: 42, caption: 'a dog' }] }, 'r');
  const results = parseCocoResults([{ image_id: '42', caption: 'a dog' }], 'res');
  assert.throws(
    () => matchCaptions(refs, results, 'r', 'res'),
    /res: 1 result\(s\) for images that have no references in r: "42"/,
  );
});

test('malformed annotation files are named errors', () => {
  const bad: [unknown, RegExp][] = [
    [[], /a COCO annotation file is a JSON object/],
    [{ annotations: [] }, /"images" must be an array/],
    [{ images: [], annotations: [] }, /"images" is empty/],
    [{ images: [{ id: 1.5 }], annotations: [] }, /images\[0\]: "id" must be an integer/],
    [{ images: [{ id: 1 }, { id: 1 }], annotations: [] }, /images\[1\]: duplicate image id 1/],
    [
      { images: [{ id: 1 }], annotations: [{ image_id: 2, caption: 'x' }] },
      /annotations\[0\]: image_id 2 is not in "images"/,
    ],
    [
      { images: [{ id: 1 }], annotations: [{ image_id: 1, caption: 3 }] },
      /annotations\[0\] \(image 1\): "caption" must be a string/,
    ],
    [
      { images: [{ id: 1 }], annotations: [{ image_id: 1, caption: '  ' }] },
      /annotations\[0\] \(image 1\): empty caption/,
    ],
    [
      { images: [{ id: 1 }, { id: 2 }], annotations: [{ image_id: 1, caption: 'a' }] },
      /1 image\(s\) without any reference caption: 2/,
    ],
  ];
  for (const [doc, message] of bad)
    assert.throws(
      () => parseCocoAnnotations(doc, 'refs.json'),
      (err: Error) => err instanceof CocoFileError && message.test(err.message) && err.message.startsWith('refs.json'),
    );
});

test('malformed results files are named errors', () => {
  const bad: [unknown, RegExp][] = [
    [{ image_id: 1 }, /a COCO results file is a JSON array/],
    [[], /no results/],
    [[{ caption: 'x' }], /\[0\]: "image_id" must be/],
    [
      [
        { image_id: 1, caption: 'a' },
        { image_id: 1, caption: 'b' },
      ],
      /\[1\]: a second result for image 1/,
    ],
    [[{ image_id: 1, caption: null }], /\[0\] \(image 1\): "caption" must be a string/],
  ];
  for (const [doc, message] of bad)
    assert.throws(
      () => parseCocoResults(doc, 'res.json'),
      (err: Error) => err instanceof CocoFileError && message.test(err.message),
    );
});

test('an empty result caption is scored (as coco-caption does) and reported, never NaN', () => {
  const refs = parseCocoAnnotations(refsDoc, 'refs.json');
  const pairs = matchCaptions(
    refs,
    parseCocoResults(
      [
        { image_id: 1, caption: '' },
        { image_id: 2, caption: '?!' },
      ],
      'res.json',
    ),
    'refs.json',
    'res.json',
  );
  assert.deepEqual(emptyCandidates(pairs), [1, 2]);
  const report = scoreCaptions(pairs);
  for (const [name, value] of Object.entries(report.corpus)) assert.ok(Number.isFinite(value), `${name} = ${value}`);
  assert.deepEqual(
    report.perImage.map((p) => [p['ROUGE-L'], p['CIDEr-D']]),
    [
      [0, 0],
      [0, 0],
    ],
  );
});

test('an image without a result (unless --subset) and a result without an image are errors', () => {
  const refs = parseCocoAnnotations(refsDoc, 'refs.json');
  const partial = parseCocoResults([{ image_id: 1, caption: 'a' }], 'res.json');
  assert.throws(
    () => matchCaptions(refs, partial, 'refs.json', 'res.json'),
    /res.json: no result for 1 of the 2 images in refs.json: 2 \(.*pass --subset\)/,
  );
  assert.deepEqual(matchCaptions(refs, partial, 'refs.json', 'res.json', { subset: true }), [
    { id: 1, candidate: 'a', references: ['a red circle', 'a red disc'] },
  ]);
  const extra = parseCocoResults(
    [
      { image_id: 1, caption: 'a' },
      { image_id: 2, caption: 'b' },
      { image_id: 9, caption: 'c' },
    ],
    'res.json',
  );
  assert.throws(
    () => matchCaptions(refs, extra, 'refs.json', 'res.json'),
    /1 result\(s\) for images that have no references in refs.json: 9/,
  );
});

test('files we write read back as the same pairs', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'captioner-coco-'));
  try {
    const images = [
      { id: 'img0', file: 'images/0.png', captions: ['a red circle', 'a circle'] },
      { id: 'img1', captions: ['a blue square'] },
    ];
    const annotations = toCocoAnnotations(images, 'test split');
    assert.deepEqual(
      annotations.annotations.map((a) => a.id),
      [1, 2, 3],
    );
    await writeFile(join(dir, 'refs.json'), JSON.stringify(annotations));
    await writeFile(
      join(dir, 'res.json'),
      JSON.stringify(
        toCocoResults([
          { id: 'img1', caption: 'a square' },
          { id: 'img0', caption: 'a circle' },
        ]),
      ),
    );
    const pairs = await readCaptionPairs(join(dir, 'refs.json'), join(dir, 'res.json'));
    assert.deepEqual(pairs, [
      { id: 'img0', candidate: 'a circle', references: ['a red circle', 'a circle'] },
      { id: 'img1', candidate: 'a square', references: ['a blue square'] },
    ]);
    await writeFile(join(dir, 'broken.json'), '{"images": [');
    await assert.rejects(
      readCaptionPairs(join(dir, 'broken.json'), join(dir, 'res.json')),
      /broken.json: the annotation file is not valid JSON/,
    );
    await assert.rejects(
      readCaptionPairs(join(dir, 'absent.json'), join(dir, 'res.json')),
      /absent.json: cannot read the annotation file \(ENOENT\)/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the COCO files of a data set give each image the id its source gave it: integers for COCO, else the string', () => {
  const images = [
    { id: '23', sourceId: 23, file: 'a.jpg', captions: ['a red square'] },
    { id: 'img7', file: 'b.jpg', captions: ['a blue circle'] },
  ];
  assert.deepEqual(images.map(cocoImageId), [23, 'img7']);
  const annotations = toCocoAnnotations(
    images.map((img) => ({ id: cocoImageId(img), file: img.file, captions: img.captions })),
    'test',
  );
  const results = toCocoResults(images.map((img) => ({ id: cocoImageId(img), caption: 'a square' })));
  assert.deepEqual(
    results.map((r) => r.image_id),
    [23, 'img7'],
  );
  // They pair with COCO's own annotation file, whose ids are integers.
  const official = parseCocoAnnotations({ images: [{ id: 23 }], annotations: [{ image_id: 23, caption: 'red' }] }, 'o');
  const pairs = matchCaptions(official, parseCocoResults([results[0]], 'r'), 'o', 'r');
  assert.deepEqual(pairs, [{ id: 23, candidate: 'a square', references: ['red'] }]);
  assert.deepEqual(parseCocoAnnotations(annotations, 'ours').ids, [23, 'img7']);
});
