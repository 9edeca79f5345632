/**
 * INTEGRATION POINT (issue 4 ↔ issue 5): the semantic judge for data sets with ground-truth
 * scenes. The shapes data set's parser and scene comparison live in
 * data-scripts/shapes/semantics.ts (`parseShapesCaption`, `compareScenes`), written alongside
 * this code; until that module is on this branch it is loaded dynamically, and a data set whose
 * judge cannot be loaded is evaluated without semantic accuracy (the report says so).
 */
import type { Manifest } from '../model/dataset.ts';
import type { SceneJudge } from './semantic.ts';

interface ShapesSemantics {
  parseShapesCaption(caption: string): unknown;
  compareScenes(predicted: unknown, truth: unknown): { exact: boolean; tp: number; fp: number; fn: number };
}

const SHAPES_SEMANTICS = '../data-scripts/shapes/semantics.ts';

/** The judge for `manifest`'s scenes, or null when the data set has none or its parser is absent. */
export async function sceneJudgeFor(manifest: Manifest): Promise<SceneJudge<unknown> | null> {
  if (manifest.name !== 'shapes') return null;
  let mod: Partial<ShapesSemantics>;
  try {
    mod = (await import(SHAPES_SEMANTICS)) as Partial<ShapesSemantics>;
  } catch {
    return null;
  }
  const { parseShapesCaption, compareScenes } = mod;
  if (typeof parseShapesCaption !== 'function' || typeof compareScenes !== 'function') return null;
  return {
    parse: (caption) => parseShapesCaption(caption) ?? null,
    compare: (predicted, truth) => compareScenes(predicted, truth),
    empty: () => ({ objects: [], relations: [] }),
  };
}
