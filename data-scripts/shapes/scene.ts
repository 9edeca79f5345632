/**
 * The world of the generated shapes data set: its vocabulary of shapes, colours, sizes and
 * relations, and the structured scene every image is drawn from (its ground truth).
 */

export const SHAPES = ['circle', 'square', 'triangle', 'star', 'diamond', 'hexagon'] as const;
export const COLOURS = ['red', 'orange', 'yellow', 'green', 'blue', 'purple'] as const;
/** "medium" is the unmarked size: captions name "small" and "large" objects only. */
export const SIZES = ['small', 'medium', 'large'] as const;
/** What a caption may say about two objects; ground truth uses "left of" and "above" only. */
export const RELATIONS = ['left of', 'right of', 'above', 'below', 'next to'] as const;

export type Shape = (typeof SHAPES)[number];
export type Colour = (typeof COLOURS)[number];
export type Size = (typeof SIZES)[number];
export type Relation = (typeof RELATIONS)[number];

/** One object. x, y: its centre as fractions of the image side (y down); ground truth only. */
export interface SceneObject {
  shape: Shape;
  colour: Colour;
  size: Size;
  x?: number;
  y?: number;
}

/** "objects[subject] <relation> objects[object]". */
export interface SceneRelation {
  subject: number;
  relation: Relation;
  object: number;
}

export interface Scene {
  objects: SceneObject[];
  relations: SceneRelation[];
}

/**
 * Colour + shape pairs never seen in training: the `test-compositional` split holds every scene
 * that contains one. A Latin square over the 6 × 6 pairs, so that each colour and each shape
 * still appears in training (with five other partners).
 */
export const HELD_OUT_PAIRS: readonly (readonly [Colour, Shape])[] = [
  ['purple', 'triangle'],
  ['orange', 'square'],
  ['green', 'star'],
  ['blue', 'hexagon'],
  ['red', 'diamond'],
  ['yellow', 'circle'],
];

/** Whether an object's colour + shape pair is held out of training. */
export function isHeldOut(obj: { colour: string; shape: string }): boolean {
  return HELD_OUT_PAIRS.some(([c, s]) => c === obj.colour && s === obj.shape);
}
