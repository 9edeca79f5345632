/**
 * Small inline SVG line charts for the evaluation report: no chart library, no script, so the
 * report stays one self-contained file that any browser (or a mail client) shows.
 */

export interface ChartSeries {
  name: string;
  /** [x, y] points; non-finite values are skipped. */
  points: readonly (readonly [number, number])[];
  colour?: string;
  /** false: drawn but not listed in the legend (e.g. every seed of an arm after the first, in one colour). */
  inLegend?: boolean;
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel?: string;
  series: readonly ChartSeries[];
  /** A y range to include whatever the data (e.g. [0, 1] for a probability). */
  yRange?: readonly [number, number];
  /**
   * 'log': y on a log₁₀ scale over whole decades, ticks at powers of ten; points with y ≤ 0 are
   * skipped (for quantities that shrink or grow geometrically, like gradients through time).
   */
  yScale?: 'linear' | 'log';
  width?: number;
  height?: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf'];

/** Escapes text for SVG/HTML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/**
 * About `count` round tick values covering [min, max]: steps of 1, 2 or 5 × 10^k (Heckbert,
 * "Nice numbers for graph labels", Graphics Gems 1990).
 */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** A tick value as a label: four significant digits, exponent notation when very large or small. */
export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

/**
 * The whole decades [10^lo, 10^hi] that hold every positive value of `ys` (at least one decade),
 * as exponents, and the ticks: one per power of ten (thinned to about six).
 */
export function logDecades(ys: readonly number[]): { lo: number; hi: number; ticks: number[] } | null {
  const positive = ys.filter((y) => y > 0 && Number.isFinite(y));
  if (positive.length === 0) return null;
  const lo = Math.floor(Math.log10(Math.min(...positive)));
  let hi = Math.ceil(Math.log10(Math.max(...positive)));
  if (hi === lo) hi = lo + 1;
  const every = Math.ceil((hi - lo + 1) / 6);
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e += every) ticks.push(e);
  return { lo, hi, ticks };
}

/** An SVG line chart (a string of markup), or null when no series has a finite point. */
export function svgLineChart(chart: LineChart): string | null {
  const width = chart.width ?? 560;
  const height = chart.height ?? 260;
  const m = { left: 64, right: 16, top: 34, bottom: 42 };
  const log = chart.yScale === 'log';
  const series = chart.series
    .map((s, i) => ({
      ...s,
      colour: s.colour ?? PALETTE[i % PALETTE.length]!,
      points: s.points
        .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!log || y > 0))
        .map(([x, y]) => [x, log ? Math.log10(y) : y] as const),
    }))
    .filter((s) => s.points.length > 0);
  if (series.length === 0) return null;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (chart.yRange) ys.push(...chart.yRange.map((y) => (log ? Math.log10(y) : y)).filter(Number.isFinite));
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  const decades = log ? logDecades(ys.map((y) => 10 ** y)) : null;
  if (decades) {
    [y0, y1] = [decades.lo, decades.hi];
  } else {
    if (y0 === y1) [y0, y1] = [y0 - (Math.abs(y0) || 1) * 0.1, y1 + (Math.abs(y1) || 1) * 0.1];
    const pad = (y1 - y0) * 0.05;
    [y0, y1] = [y0 - pad, y1 + pad];
  }
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * plotW;
  const sy = (y: number) => m.top + plotH - ((y - y0) / (y1 - y0)) * plotH;
  const f = (v: number) => v.toFixed(1);

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(chart.title)}">`,
  );
  parts.push(`<text x="${m.left}" y="18" font-size="14" font-weight="bold">${escapeXml(chart.title)}</text>`);
  for (const t of decades?.ticks ?? niceTicks(y0, y1)) {
    const label = decades ? formatTick(10 ** t) : formatTick(t);
    parts.push(`<line x1="${m.left}" x2="${width - m.right}" y1="${f(sy(t))}" y2="${f(sy(t))}" stroke="#e4e4e4"/>`);
    parts.push(`<text x="${m.left - 6}" y="${f(sy(t) + 4)}" font-size="11" text-anchor="end">${label}</text>`);
  }
  for (const t of niceTicks(x0, x1)) {
    parts.push(
      `<line x1="${f(sx(t))}" x2="${f(sx(t))}" y1="${m.top + plotH}" y2="${m.top + plotH + 4}" stroke="#444"/>`,
    );
    parts.push(
      `<text x="${f(sx(t))}" y="${m.top + plotH + 17}" font-size="11" text-anchor="middle">${formatTick(t)}</text>`,
    );
  }
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444"/>`);
  parts.push(
    `<text x="${m.left + plotW / 2}" y="${height - 6}" font-size="12" text-anchor="middle">${escapeXml(chart.xLabel)}</text>`,
  );
  if (chart.yLabel) {
    parts.push(
      `<text transform="translate(14 ${m.top + plotH / 2}) rotate(-90)" font-size="12" text-anchor="middle">${escapeXml(chart.yLabel)}</text>`,
    );
  }
  for (const s of series) {
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    if (pts.length > 1) {
      parts.push(
        `<polyline fill="none" stroke="${s.colour}" stroke-width="1.5" points="${pts.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(' ')}"/>`,
      );
    }
    if (pts.length <= 40)
      for (const [x, y] of pts) parts.push(`<circle cx="${f(sx(x))}" cy="${f(sy(y))}" r="2.5" fill="${s.colour}"/>`);
  }
  series
    .filter((s) => s.inLegend !== false)
    .forEach((s, i) => {
      const x = width - m.right - 150;
      const y = m.top + 14 + i * 16;
      parts.push(
        `<rect x="${x}" y="${y - 8}" width="12" height="3" fill="${s.colour}"/><text x="${x + 18}" y="${y - 3}" font-size="11">${escapeXml(s.name)}</text>`,
      );
    });
  parts.push('</svg>');
  return parts.join('');
}
