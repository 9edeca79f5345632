/**
 * What the report and the model page draw of a training log's "gradient-flow" records
 * (model/train/gradient-flow.ts): the first and the last measurement, so that the gradient's
 * flow through time before training and after it sit side by side, on a log scale (a gradient
 * that vanishes or explodes does so geometrically, a straight line there).
 */
import type { ChartSeries } from './charts.ts';
import type { MetricsRecord } from '../model/io/metrics-log.ts';

/** A chart to draw on a log scale: what each front end lays out its own way. */
export interface FlowChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
}

function numbers(value: unknown): number[] | null {
  return Array.isArray(value) && value.every((v) => typeof v === 'number') ? value : null;
}

/** The log's gradient-flow records with their figures present, in order. */
export function gradientFlowRecords(records: readonly MetricsRecord[]): MetricsRecord[] {
  return records.filter((r) => r.type === 'gradient-flow' && numbers(r.hNorm) && numbers(r.lastWordH));
}

/**
 * Two charts from the first and last gradient-flow records (one record: that one): ‖∂L_n/∂h‖ of
 * each caption's last word over the distance k back from the state that reads it, and ‖∂L/∂h_t‖
 * of the whole loss at each state t; with the LSTM's cell state beside h. [] without records.
 */
export function gradientFlowCharts(records: readonly MetricsRecord[]): FlowChart[] {
  const flow = gradientFlowRecords(records);
  if (flow.length === 0) return [];
  const ends = flow.length === 1 ? [flow[0]!] : [flow[0]!, flow[flow.length - 1]!];
  const series = (key: string, what: string): ChartSeries[] =>
    ends.flatMap((r) => {
      const ys = numbers(r[key]);
      return ys ? [{ name: `${what}, step ${r.step}`, points: ys.map((y, x) => [x, y] as const) }] : [];
    });
  return [
    {
      title: "Gradient of the last word's loss at earlier states (‖∂Lₙ/∂hₙ₋ₖ‖)",
      xLabel: 'distance k back, in time steps',
      yLabel: 'gradient norm (log)',
      series: [...series('lastWordH', 'h'), ...series('lastWordC', 'c (cell state)')],
    },
    {
      title: 'Gradient of the loss at each state (‖∂L/∂hₜ‖)',
      xLabel: 'time step t (0: the initial state, from the image)',
      yLabel: 'gradient norm (log)',
      series: [...series('hNorm', 'h'), ...series('cNorm', 'c (cell state)')],
    },
  ];
}
