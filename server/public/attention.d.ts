/** Types of the pure drawing functions of attention.js (a plain ES module, so that the browser runs the same file). */
export const MAX_SHADE: number;
export const MAX_ALPHA: number;
export const OUTLINE_AT: number;
export const HATCH_ALPHA: number;
export function overlayColour(t: number): [number, number, number, number];
export function overlayPixels(
  width: number,
  height: number,
  weights: readonly number[],
  grid: readonly [number, number],
): Uint8ClampedArray;
export function sampleGrid(weights: readonly number[], rows: number, cols: number, u: number, v: number): number;
export function centreSquare(width: number, height: number): { x: number; y: number; side: number };
export function placeOf(index: number, grid: readonly [number, number]): string;
