/**
 * A few Prometheus metrics, rendered in the text exposition format (version 0.0.4:
 * https://prometheus.io/docs/instrumenting/exposition_formats/): counters, gauges read at scrape
 * time, and histograms with cumulative `le` buckets plus `_sum` and `_count`.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

type Labels = Record<string, string>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(
    ([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`,
  );
  return parts.length ? `{${parts.join(',')}}` : '';
}

function key(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    const k = key(labels);
    const entry = this.values.get(k) ?? { labels, value: 0 };
    entry.value += by;
    this.values.set(k, entry);
  }

  get(labels: Labels = {}): number {
    return this.values.get(key(labels))?.value ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const { labels, value } of this.values.values()) lines.push(`${this.name}${labelText(labels)} ${value}`);
    return lines.join('\n');
  }
}

/**
 * A value read when scraped: a gauge, or a counter kept elsewhere (the worker pool's). `read` gives
 * one value, or one per label set (a series per worker, say).
 */
export class Gauge {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number | readonly { labels: Labels; value: number }[],
    private readonly type: 'gauge' | 'counter' = 'gauge',
  ) {}

  render(): string {
    const value = this.read();
    const series = typeof value === 'number' ? [{ labels: {}, value }] : value;
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} ${this.type}`,
      ...series.map(({ labels, value }) => `${this.name}${labelText(labels)} ${value}`),
    ].join('\n');
  }
}

export class Histogram {
  private readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    /** Upper bounds, ascending; +Inf is implied. */
    readonly buckets: readonly number[],
  ) {}

  observe(value: number, labels: Labels = {}): void {
    const k = key(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { labels, counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    this.buckets.forEach((le, i) => {
      if (value <= le) s.counts[i]! += 1;
    });
    s.sum += value;
    s.count += 1;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.series.values()) {
      this.buckets.forEach((le, i) =>
        lines.push(`${this.name}_bucket${labelText({ ...s.labels, le: String(le) })} ${s.counts[i]}`),
      );
      lines.push(`${this.name}_bucket${labelText({ ...s.labels, le: '+Inf' })} ${s.count}`);
      lines.push(`${this.name}_sum${labelText(s.labels)} ${s.sum}`);
      lines.push(`${this.name}_count${labelText(s.labels)} ${s.count}`);
    }
    return lines.join('\n');
  }
}

/** How often the event-loop delay is timed, in ms. */
const EVENT_LOOP_RESOLUTION_MS = 10;

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** What the metrics read from the worker pool (server/workers.ts PoolStats). */
interface PoolFigures {
  queued: number;
  busy: number;
  ready: number;
  reserved: number;
  starting: number;
  restarts: number;
  startFailures: number;
  cancelledInWorker: number;
  tensorsByWorker: readonly { threadId: number; numTensors: number }[];
}

/** What the metrics read from the decode memory budget (server/decode-budget.ts). */
interface DecodeFigures {
  decoding: number;
  waiting: number;
  bytes: number;
  peakBytes: number;
}

/**
 * The server's metrics. Gauges read the pool (and the decode budget) when scraped. Requests are
 * counted by method, route and status when their response ends; a request whose client left
 * before the answer was sent counts as status 499 ("client closed request", nginx's code).
 */
export class ServerMetrics {
  readonly requests = new Counter(
    'captioner_http_requests_total',
    'HTTP requests by method, route and status (499: the client left before the answer)',
  );
  readonly latency = new Histogram('captioner_http_request_duration_seconds', 'HTTP request latency by route', SECONDS);
  readonly captions = new Counter('captioner_captions_total', 'captions generated, by decoding strategy');
  readonly captionFailures = new Counter(
    'captioner_caption_failures_total',
    'caption jobs that did not finish, by reason',
  );
  readonly decodeSeconds = new Histogram(
    'captioner_decode_duration_seconds',
    'time a worker spent decoding one caption',
    SECONDS,
  );
  readonly queueSeconds = new Histogram(
    'captioner_queue_wait_seconds',
    'time a caption job waited for a worker',
    SECONDS,
  );
  private readonly gauges: Gauge[];

  /** The main thread's event-loop delay since the server started, timed every 10 ms. */
  private readonly eventLoopDelay = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });

  constructor(pool: { stats(): PoolFigures }) {
    const read = (key: Exclude<keyof PoolFigures, 'tensorsByWorker'>) => () => pool.stats()[key];
    this.eventLoopDelay.enable();
    const delay = this.eventLoopDelay;
    /**
     * Seconds at quantile q (0 to 1; 1 is the maximum), 0 before the first measurement. The
     * histogram holds the time between the timer's firings: the delay is what exceeds its interval.
     */
    const delaySeconds = (q: number) => {
      if (delay.count === 0) return 0;
      const ns = q === 1 ? delay.max : delay.percentile(q * 100);
      return Math.max(0, ns / 1e9 - EVENT_LOOP_RESOLUTION_MS / 1000);
    };
    this.gauges = [
      new Gauge('captioner_queue_length', 'caption jobs waiting for a worker', read('queued')),
      new Gauge('captioner_workers_busy', 'workers decoding now', read('busy')),
      new Gauge('captioner_workers_ready', 'workers with the model loaded', read('ready')),
      new Gauge(
        'captioner_workers_starting',
        'replacement workers loading the model or waiting to retry',
        read('starting'),
      ),
      new Gauge(
        'captioner_requests_admitted',
        'caption requests holding a place: being read, decoded, queued or captioned',
        read('reserved'),
      ),
      new Gauge(
        'captioner_worker_restarts_total',
        'workers replaced after a crash or a forced stop',
        read('restarts'),
        'counter',
      ),
      new Gauge(
        'captioner_worker_start_failures_total',
        'replacement workers that could not load the model',
        read('startFailures'),
        'counter',
      ),
      new Gauge(
        'captioner_jobs_cancelled_in_worker_total',
        'caption jobs a worker stopped part-way (timeout, client gone)',
        read('cancelledInWorker'),
        'counter',
      ),
      new Gauge('captioner_worker_tensors', 'live tensors in each ready worker after its last job, by thread id', () =>
        pool.stats().tensorsByWorker.map((w) => ({ labels: { worker: String(w.threadId) }, value: w.numTensors })),
      ),
      // The process's figures (its worker threads included), as Prometheus's client libraries name them.
      new Gauge('process_resident_memory_bytes', 'resident memory of the server process, worker threads included', () =>
        process.memoryUsage.rss(),
      ),
      new Gauge(
        'nodejs_eventloop_delay_seconds',
        "the main thread's event-loop delay since start (beyond a 10 ms timer), by quantile (0.5, 0.99; 1 is the maximum)",
        () => [0.5, 0.99, 1].map((q) => ({ labels: { quantile: String(q) }, value: delaySeconds(q) })),
      ),
    ];
  }

  /** Stops watching the event loop (the server is closing). */
  stop(): void {
    this.eventLoopDelay.disable();
  }

  /** Adds the decode budget's gauges (images being decoded, waiting, their estimated memory). */
  watchDecodes(budget: { stats(): DecodeFigures }): void {
    const read = (key: keyof DecodeFigures) => () => budget.stats()[key];
    this.gauges.push(
      new Gauge('captioner_image_decodes', 'uploaded images being decoded now', read('decoding')),
      new Gauge('captioner_image_decodes_waiting', 'uploaded images waiting for decode memory', read('waiting')),
      new Gauge('captioner_image_decode_bytes', 'estimated memory the decodes in progress hold', read('bytes')),
      new Gauge(
        'captioner_image_decode_peak_bytes',
        'the most estimated decode memory held at once',
        read('peakBytes'),
      ),
    );
  }

  /** The exposition text (Content-Type: text/plain; version=0.0.4). */
  render(): string {
    const all = [
      this.requests,
      this.latency,
      this.captions,
      this.captionFailures,
      this.decodeSeconds,
      this.queueSeconds,
      ...this.gauges,
    ];
    return all.map((m) => m.render()).join('\n') + '\n';
  }
}
