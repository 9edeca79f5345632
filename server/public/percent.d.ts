/** Types of percent.js (a plain ES module, so that the browser runs the same file). */
export function formatPercent(p: number, digits?: number): string;
