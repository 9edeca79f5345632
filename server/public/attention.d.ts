/** Types of the pure drawing functions of attention.js (a plain ES module, so that the browser runs the same file). */
export const MAX_SHADE: number;
export function sampleGrid(weights: readonly number[], rows: number, cols: number, u: number, v: number): number;
export function centreSquare(width: number, height: number): { x: number; y: number; side: number };
export function placeOf(index: number, grid: readonly [number, number]): string;
