/**
 * What became of each held-out object: after `captioner eval`, reads the compositional split's
 * captions back into objects and counts, for every object whose colour + shape pair training
 * never showed, whether the caption names that pair, keeps its colour but swaps the shape (and
 * how often the shape it says is another object's in the same scene), keeps the shape but swaps
 * the colour, says both words but on different objects, or neither; and, per held-out pair, how
 * many of its objects the captions name right.
 *
 *   node --import tsx scripts/held-out-fate.ts EVAL_DIR DATA_DIR [SPLIT]
 *
 * EVAL_DIR is an `eval --out` directory (it holds results-SPLIT.json); DATA_DIR the shapes data
 * set it scored; SPLIT test-compositional (the default) or selection-compositional, the split to
 * make choices on. Prints one JSON line.
 */
import { parseShapesCaption } from '../data-scripts/shapes/semantics.ts';
import { isHeldOut } from '../data-scripts/shapes/scene.ts';
import { readScoredCaptions } from './scored-captions.ts';

const [evalDir, dataDir, split = 'test-compositional'] = process.argv.slice(2);
if (!evalDir || !dataDir) {
  process.stderr.write('usage: scripts/held-out-fate.ts EVAL_DIR DATA_DIR [SPLIT]\n');
  process.exit(2);
}
const counts = {
  heldOutObjects: 0,
  named: 0,
  colourKeptShapeSwapped: 0,
  swappedForAnotherObjectsShape: 0,
  shapeKeptColourSwapped: 0,
  bothSaidUnbound: 0,
  neither: 0,
  captionUnparsed: 0,
};
/** Per held-out pair ("blue hexagon"): its objects, and how many the captions name right. */
const byPair: Record<string, { objects: number; named: number }> = {};
for (const { caption, truth } of readScoredCaptions(evalDir, dataDir, split)) {
  const said = parseShapesCaption(caption);
  for (const o of truth.objects.filter(isHeldOut)) {
    counts.heldOutObjects++;
    const pair = (byPair[`${o.colour} ${o.shape}`] ??= { objects: 0, named: 0 });
    pair.objects++;
    if (!said) {
      counts.captionUnparsed++;
      continue;
    }
    const colour = said.objects.some((q) => q.colour === o.colour);
    const shape = said.objects.some((q) => q.shape === o.shape);
    if (said.objects.some((q) => q.colour === o.colour && q.shape === o.shape)) {
      counts.named++;
      pair.named++;
    } else if (colour && shape) counts.bothSaidUnbound++;
    else if (colour) {
      counts.colourKeptShapeSwapped++;
      // Was the shape said with that colour one that another object in the scene has?
      const others = truth.objects.filter((q) => q !== o);
      if (said.objects.some((q) => q.colour === o.colour && others.some((x) => x.shape === q.shape)))
        counts.swappedForAnotherObjectsShape++;
    } else if (shape) counts.shapeKeptColourSwapped++;
    else counts.neither++;
  }
}
console.log(JSON.stringify({ ...counts, byPair }));
