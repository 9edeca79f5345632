/**
 * The soak test's traffic (scripts/soak.ts): each kind of request a client of the web app may
 * send, good or hostile, with the answers that are right for it. The request bodies are made once
 * (test/helpers/http-fixtures.ts makes the images and hostile files the server's tests use), so
 * that the client spends its time sending, not encoding.
 *
 * A kind's `run` sends one request (a burst sends many) and returns each answer's status: an HTTP
 * code, `cut` when the client hung up on purpose before the answer was complete, `error` when a
 * request got no answer it did not mean to drop. A `problem` is something wrong in an answer
 * whose status is right (a page echoing markup unescaped, a file from outside the static folder).
 */
import { request as httpRequest } from 'node:http';
import { isIPv4 } from 'node:net';
import {
  form,
  heavyPng,
  image,
  multipartBytes,
  pngHeaderClaiming,
  rawRequest,
  startUpload,
  type RawResponse,
} from '../../test/helpers/http-fixtures.ts';
import type { KindSpec } from './verdict.ts';

/**
 * True for a loopback address or name: 127.0.0.0/8, ::1 (bracketed or not), localhost. The soak
 * sends hostile traffic, so it only ever targets this machine.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  return isIPv4(h) && h.split('.')[0] === '127';
}

/** The server under soak. */
export interface Target {
  url: string;
  workers: number;
  queue: number;
  /** The server's upload limit in bytes (an oversized body is one byte past it, and some). */
  maxUploadBytes: number;
  /** How long a request may go without an answer before it counts as `error`. */
  requestTimeoutMs: number;
}

export interface Answer {
  status: string;
  problem?: string;
  /** Why a request got no answer (for the log). */
  error?: string;
}

/** Picks one of xs, from the soak's seeded random numbers. */
export type Pick = <T>(xs: readonly T[]) => T;

export interface TrafficKind extends KindSpec {
  describe: string;
  /** How often the mixed traffic picks it, relative to the others. */
  weight: number;
  run(target: Target, pick: Pick): Promise<Answer[]>;
}

interface Body {
  body: Buffer;
  contentType: string;
}

/** The bodies the traffic sends, made once. */
export interface Payloads {
  /** Good images in every accepted format that sharp writes fast, at a few sizes: for JSON, stream and page. */
  captions: Body[];
  streams: Body[];
  pageForms: Body[];
  /** Beam search, for bursts and for streams cut part-way. */
  beam: Body[];
  /** A 3000×3000 16-bit RGBA PNG read in strips: within the decode budget, slow to upload and decode. */
  heavy: Body;
  hostile: {
    bomb: Body;
    png16Interlaced: Body;
    svg: Body;
    protoFields: Body[];
    xssField: Body;
    xssName: Body;
    corrupt: Body[];
    oversized: Body;
  };
}

const XSS = '<img src=x onerror=alert(1)>';
const XSS_SCRIPT = '<script>alert(1)</script>';

const bytesOf = async (f: FormData): Promise<Body> => multipartBytes(f);

/**
 * Makes the bodies. `maxUploadBytes`: the server's limit, which the oversized body passes. The
 * 6000×6000 16-bit interlaced PNG takes a few seconds to encode.
 */
export async function makePayloads(maxUploadBytes: number): Promise<Payloads> {
  const colours = ['#e02020', '#2060e0', '#20a040', '#e0c020', '#a020c0'];
  const sizes: [number, number][] = [
    [48, 48],
    [160, 120],
    [640, 480],
  ];
  const formats = ['png', 'jpeg', 'webp', 'gif'] as const;
  const images: { bytes: Buffer; name: string; type: string }[] = [];
  for (const [i, format] of formats.entries())
    for (const [j, [w, h]] of sizes.entries())
      images.push({
        bytes: await image(format, w, h, colours[(i + j) % colours.length]),
        name: `good-${w}x${h}.${format === 'jpeg' ? 'jpg' : format}`,
        type: `image/${format}`,
      });
  const strategies: Record<string, string>[] = [
    { strategy: 'greedy' },
    { strategy: 'beam' },
    { strategy: 'sample', seed: '7' },
  ];
  const withFields = (fields: Record<string, string>[]) =>
    Promise.all(images.flatMap((im) => fields.map((f) => bytesOf(form(im.bytes, im.name, im.type, f)))));
  const png = await image('png');
  const jpeg = await image('jpeg', 64, 64);
  const svg = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg">${XSS_SCRIPT}</svg>`);
  const [heavy, png16] = await Promise.all([heavyPng(3000, 3000, false), heavyPng(6000, 6000, true)]);
  return {
    captions: await withFields(strategies),
    streams: await withFields([{ strategy: 'greedy' }, { strategy: 'beam' }]),
    pageForms: await withFields([
      { strategy: 'greedy', beamWidth: '3' },
      { strategy: 'beam', beamWidth: '3' },
    ]),
    beam: await withFields([{ strategy: 'beam', beamWidth: '5' }]),
    heavy: await bytesOf(form(heavy, 'heavy.png', 'image/png', { strategy: 'greedy' })),
    hostile: {
      // 50000 × 50000 announced in a few hundred bytes.
      bomb: await bytesOf(form(pngHeaderClaiming(50_000, 50_000), 'bomb.png')),
      // 36 megapixels (within the pixel limit), 16-bit RGBA, interlaced: about 290 MB to decode.
      png16Interlaced: await bytesOf(form(png16, 'deep.png')),
      svg: await bytesOf(form(svg, 'x.png', 'image/png')),
      protoFields: await Promise.all(
        ['__proto__', 'constructor', 'toString'].map((name) =>
          bytesOf(form(png, 'x.png', 'image/png', { [name]: '1' })),
        ),
      ),
      xssField: await bytesOf(form(png, 'x.png', 'image/png', { [XSS]: '1' })),
      xssName: await bytesOf(form(svg, `"${XSS_SCRIPT}.png`, 'image/png')),
      corrupt: [
        await bytesOf(form(new Uint8Array(0))),
        await bytesOf(form(Buffer.concat([png.subarray(0, 8), Buffer.alloc(40, 7)]))),
        await bytesOf(form(jpeg.subarray(0, jpeg.length >> 1), 'x.jpg', 'image/jpeg')),
        await bytesOf(form(Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.alloc(4000, 0x5a)]), 'x.jpg')),
        {
          body: Buffer.from('--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n\x89PNG'),
          contentType: 'multipart/form-data; boundary=b',
        },
      ],
      oversized: await bytesOf(form(Buffer.concat([png, Buffer.alloc(maxUploadBytes + 1024)]), 'big.png')),
    },
  };
}

/** Sends one request; an answer, or `error` when none came. */
async function send(
  target: Target,
  request: { method?: string; path: string; headers?: Record<string, string>; body?: Body },
): Promise<{ answer: Answer; response?: RawResponse }> {
  const { body } = request;
  try {
    const response = await rawRequest(target.url, {
      method: request.method ?? (body ? 'POST' : 'GET'),
      path: request.path,
      headers: {
        ...(body ? { 'content-type': body.contentType, 'content-length': String(body.body.length) } : {}),
        ...request.headers,
      },
      ...(body ? { body: body.body } : {}),
      timeoutMs: target.requestTimeoutMs,
    });
    return { answer: { status: String(response.status) }, response };
  } catch (err) {
    return { answer: { status: 'error', error: (err as Error).message } };
  }
}

const post = (target: Target, path: string, body: Body, headers: Record<string, string> = {}) =>
  send(target, { path, body, headers });

/**
 * A streamed caption: the status, or the last event's (`done` → 200, `error` → its status). With
 * `cutAfterRecords`, the client hangs up once that many records have arrived (`cut`), unless the
 * stream has already ended.
 */
function stream(target: Target, body: Body, cutAfterRecords?: number): Promise<Answer> {
  const { hostname, port } = new URL(target.url);
  return new Promise((resolve) => {
    let settled = false;
    const done = (a: Answer) => {
      if (!settled) resolve(a);
      settled = true;
    };
    const req = httpRequest({
      hostname,
      port,
      method: 'POST',
      path: '/api/captions/stream',
      headers: { 'content-type': body.contentType, 'content-length': String(body.body.length) },
      timeout: target.requestTimeoutMs,
    });
    req.on('timeout', () => req.destroy(new Error(`no stream data within ${target.requestTimeoutMs} ms`)));
    req.on('error', (err) => done({ status: 'error', error: err.message }));
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        res.on('end', () => done({ status: String(res.statusCode) }));
        return;
      }
      let text = '';
      let records: string[] = [];
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        const parts = text.split('\n\n');
        text = parts.pop() ?? '';
        records = records.concat(parts);
        const last = records[records.length - 1] ?? '';
        if (
          cutAfterRecords !== undefined &&
          records.length >= cutAfterRecords &&
          !/^event: (done|error)$/m.test(last)
        ) {
          done({ status: 'cut' });
          req.destroy();
        }
      });
      res.on('end', () => {
        const last = records[records.length - 1] ?? '';
        const event = /^event: (.*)$/m.exec(last)?.[1];
        if (event === 'done') done({ status: '200' });
        else if (event === 'error') {
          const data = JSON.parse(/^data: (.*)$/m.exec(last)?.[1] ?? '{}') as { status?: number };
          done({ status: String(data.status ?? 'error') });
        } else done({ status: 'error', error: `the stream ended after ${records.length} record(s) without done` });
      });
      res.on('error', (err) => done({ status: 'error', error: err.message }));
    });
    req.end(body.body);
  });
}

/** A request whose client hangs up after `afterMs`, having sent `sent` bytes of its body. */
async function hangUp(target: Target, body: Body, sent: number, afterMs: number): Promise<Answer> {
  const client = startUpload(target.url, '/api/captions', body, sent);
  const answered = client.response.then((r) => (r instanceof Error ? null : r));
  const early = await Promise.race([answered, new Promise<null>((r) => setTimeout(() => r(null), afterMs))]);
  client.destroy();
  if (early) {
    // Answered before the hang-up: a refusal at the door (503), or a caption faster than afterMs.
    return { status: String(early.status) };
  }
  return { status: 'cut' };
}

const between = (pick: Pick, lo: number, hi: number) => pick(Array.from({ length: hi - lo + 1 }, (_, i) => lo + i));

/**
 * Markup from a request found unescaped in an HTML answer. (A JSON answer may quote a field name
 * as it was sent: served as application/json with nosniff, no browser runs it.)
 */
function echoesMarkup(response: RawResponse | undefined): boolean {
  if (!response) return false;
  const type = String(response.headers['content-type'] ?? '');
  const raw = response.body.includes(XSS) || response.body.includes(XSS_SCRIPT);
  if (!raw) return false;
  return !/^application\/json\b/.test(type) || response.headers['x-content-type-options'] !== 'nosniff';
}

/** The kinds of traffic, given the bodies. */
export function trafficKinds(p: Payloads): TrafficKind[] {
  const busy = ['503', '504'];
  return [
    // ── Good ────────────────────────────────────────────────────────────────────────────────
    {
      name: 'caption',
      group: 'good',
      describe: 'POST /api/captions: a good image (PNG, JPEG, WebP, GIF; 48 to 640 px), greedy, beam or sampling',
      expected: ['200', ...busy],
      weight: 6,
      run: async (t, pick) => [(await post(t, '/api/captions', pick(p.captions))).answer],
    },
    {
      name: 'stream',
      group: 'good',
      describe: 'POST /api/captions/stream, read to its done event',
      expected: ['200', ...busy],
      weight: 3,
      run: async (t, pick) => [await stream(t, pick(p.streams))],
    },
    {
      name: 'page-form',
      group: 'good',
      describe: 'POST / without JavaScript (an HTML answer with a preview)',
      expected: ['200', ...busy],
      weight: 1,
      run: async (t, pick) => [(await post(t, '/', pick(p.pageForms), { accept: 'text/html' })).answer],
    },
    {
      name: 'pages',
      group: 'good',
      describe: 'GET /, /model, /static/app.js, /static/style.css, /healthz, /readyz',
      // /readyz is 503 while no worker is ready.
      expected: ['200', '503'],
      weight: 2,
      run: async (t, pick) => [
        (await send(t, { path: pick(['/', '/model', '/static/app.js', '/static/style.css', '/healthz', '/readyz']) }))
          .answer,
      ],
    },
    // ── Hostile: every kind the server defends against ────────────────────────────────────
    {
      name: 'bomb',
      group: 'hostile',
      describe: 'a decompression bomb: a PNG header announcing 50000×50000',
      expected: ['413', '503'],
      weight: 1,
      run: async (t) => [(await post(t, '/api/captions', p.hostile.bomb)).answer],
    },
    {
      name: 'png16-interlaced',
      group: 'hostile',
      describe: 'a 6000×6000 16-bit RGBA interlaced PNG (6 MB; about 290 MB to decode)',
      expected: ['413', '503'],
      weight: 0.5,
      run: async (t) => [(await post(t, '/api/captions', p.hostile.png16Interlaced)).answer],
    },
    {
      name: 'svg',
      group: 'hostile',
      describe: 'an SVG with a script, named .png',
      expected: ['415', '503'],
      weight: 1,
      run: async (t) => [(await post(t, '/api/captions', p.hostile.svg)).answer],
    },
    {
      name: 'traversal',
      group: 'hostile',
      describe: 'GET paths that climb out of /static (raw, %2f, %2e%2e, backslashes)',
      expected: ['400', '403', '404'],
      weight: 1,
      run: async (t, pick) => {
        const path = pick([
          '/static/../package.json',
          '/static/../../package.json',
          '/static/..%2f..%2fpackage.json',
          '/static/%2e%2e/%2e%2e/package.json',
          '/static/..%5c..%5cpackage.json',
          '/static//etc/passwd',
          '/..%2f..%2f..%2fetc%2fpasswd',
        ]);
        const { answer, response } = await send(t, { path });
        if (response && /"name": "captioner"|root:x:0:0/.test(response.body))
          answer.problem = 'traversal: a file from outside the static folder was served';
        return [answer];
      },
    },
    {
      name: 'xss',
      group: 'hostile',
      describe: 'markup in a field name, a file name and a path, on the page and the API',
      expected: ['400', '404', '415', '503'],
      weight: 1,
      run: async (t, pick) => {
        const html = { accept: 'text/html' };
        const { answer, response } = await pick([
          () => post(t, '/', p.hostile.xssField, html),
          () => post(t, '/api/captions', p.hostile.xssField),
          () => post(t, '/', p.hostile.xssName, html),
          () => post(t, '/api/captions', p.hostile.xssName),
          () => send(t, { path: `/${encodeURIComponent(XSS_SCRIPT)}`, headers: html }),
        ])();
        if (echoesMarkup(response)) answer.problem = 'xss: markup from the request echoed unescaped';
        return [answer];
      },
    },
    {
      name: 'proto-field',
      group: 'hostile',
      describe: 'decoding fields named __proto__, constructor, toString',
      expected: ['400', '503'],
      weight: 1,
      run: async (t, pick) => [(await post(t, '/api/captions', pick(p.hostile.protoFields))).answer],
    },
    {
      name: 'bad-host',
      group: 'hostile',
      describe: 'a Host the server does not answer to (DNS rebinding), on a page and a caption',
      expected: ['421'],
      weight: 1,
      run: async (t, pick) => {
        const host = { host: `rebound.example:${new URL(t.url).port}` };
        const { answer, response } = await pick([
          () => send(t, { path: '/model', headers: host }),
          () => post(t, '/api/captions', pick(p.captions), host),
        ])();
        if (response && /hiddenSize|"caption"/.test(response.body))
          answer.problem = 'bad-host: the answer showed the model or a caption';
        return [answer];
      },
    },
    {
      name: 'bad-origin',
      group: 'hostile',
      describe: 'a caption POST from another origin',
      expected: ['403'],
      weight: 1,
      run: async (t, pick) => [
        (await post(t, pick(['/api/captions', '/']), pick(p.captions), { origin: 'https://evil.example' })).answer,
      ],
    },
    {
      name: 'oversized',
      group: 'hostile',
      describe: 'a body past the upload limit',
      expected: ['413', '503'],
      weight: 0.3,
      run: async (t) => [(await post(t, '/api/captions', p.hostile.oversized)).answer],
    },
    {
      name: 'corrupt',
      group: 'hostile',
      describe: 'an empty file, a corrupt PNG header, a truncated JPEG, JPEG magic then junk, a cut-off multipart body',
      expected: ['400', '503'],
      weight: 1,
      run: async (t, pick) => [(await post(t, '/api/captions', pick(p.hostile.corrupt))).answer],
    },
    // ── Clients that leave ──────────────────────────────────────────────────────────────────
    {
      name: 'cut-upload',
      group: 'disconnect',
      describe: 'sends half of a 1.5 MB upload, then hangs up',
      expected: ['cut', '503'],
      weight: 1,
      run: async (t, pick) => [await hangUp(t, p.heavy, p.heavy.body.length >> 1, between(pick, 20, 200))],
    },
    {
      name: 'cut-decode',
      group: 'disconnect',
      describe: 'sends a whole 3000×3000 16-bit PNG, hangs up while it is decoded or queued',
      expected: ['cut', '200', '503'],
      weight: 1,
      run: async (t, pick) => [await hangUp(t, p.heavy, p.heavy.body.length, between(pick, 50, 400))],
    },
    {
      name: 'cut-stream',
      group: 'disconnect',
      describe: 'a beam-search stream, hung up after its first event past start',
      expected: ['cut', '200', ...busy],
      weight: 1,
      run: async (t, pick) => [await stream(t, pick(p.beam), 2)],
    },
    // ── Past the queue ──────────────────────────────────────────────────────────────────────
    {
      name: 'burst',
      group: 'burst',
      describe: 'workers + queue + 8 beam-search captions at once',
      expected: ['200', ...busy],
      weight: 0,
      run: async (t, pick) =>
        Promise.all(
          Array.from(
            { length: t.workers + t.queue + 8 },
            async () => (await post(t, '/api/captions', pick(p.beam))).answer,
          ),
        ),
    },
  ];
}
