/**
 * Requests a client of the web app sends, good and hostile, shared by the server's tests and the
 * soak test (scripts/soak.ts): images of every accepted format made with sharp, hostile files
 * made by hand (a decompression bomb's header, a heavy 16-bit interlaced PNG), multipart bodies,
 * raw node:http requests that send any Host and Origin or stop part-way, a reader for
 * Server-Sent Events, and a reader for /metrics.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';

/** A w × h image: a coloured disc on a light background, in `format`. */
export async function image(
  format: 'png' | 'jpeg' | 'webp' | 'gif' | 'avif' | 'tiff',
  w = 48,
  h = 48,
  colour = '#e02020',
): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><rect width="100%" height="100%" fill="#f4f4f4"/><circle cx="${w / 2}" cy="${h / 2}" r="${Math.min(w, h) * 0.35}" fill="${colour}"/></svg>`;
  return sharp(Buffer.from(svg)).toFormat(format).toBuffer();
}

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/**
 * A decompression bomb's calling card: a valid PNG header announcing width × height (8-bit RGB),
 * followed by the start of its pixel data (a few rows of zeros, deflated). Decoding it would
 * allocate width × height × 3 bytes.
 */
export function pngHeaderClaiming(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  const rows = deflateSync(Buffer.alloc((1 + width * 3) * 4));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', rows),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A multipart form with the file in the field "image" and any extra fields. */
export function form(
  bytes: Uint8Array,
  filename = 'image.png',
  type = 'image/png',
  fields: Record<string, string> = {},
): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  f.append('image', new Blob([new Uint8Array(bytes)], { type }), filename);
  return f;
}

export interface SseRecord {
  event: string;
  data: Record<string, unknown>;
}

/** Reads a text/event-stream response to its end; `onRecord` sees each record as it arrives. */
export async function readSse(res: Response, onRecord?: (r: SseRecord) => void): Promise<SseRecord[]> {
  const records: SseRecord[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null') as Record<string, unknown>;
      const record = { event, data };
      records.push(record);
      onRecord?.(record);
    }
  }
  return records;
}

/**
 * A large PNG that is slow and memory-hungry to decode: width × height, 16-bit RGBA (noise, so
 * that it does not compress away), optionally interlaced (Adam7), the shape of a decode bomb that
 * the pixel limit alone lets through.
 */
export async function heavyPng(width: number, height: number, interlaced: boolean): Promise<Buffer> {
  const tile = Buffer.alloc(64 * 64 * 4);
  for (let i = 0; i < tile.length; i++) tile[i] = (i * 2654435761) >>> 24;
  return sharp(tile, { raw: { width: 64, height: 64, channels: 4 } })
    .resize(width, height, { kernel: 'nearest' })
    .toColourspace('rgb16')
    .png({ progressive: interlaced, compressionLevel: 1 })
    .toBuffer();
}

/** A multipart body as bytes with its Content-Type (for requests made with node:http). */
export async function multipartBytes(f: FormData): Promise<{ body: Buffer; contentType: string }> {
  const request = new Request('http://localhost/', { method: 'POST', body: f });
  return {
    body: Buffer.from(await request.arrayBuffer()),
    contentType: request.headers.get('content-type') ?? '',
  };
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * A request made with node:http, which (unlike fetch) sends any Host and Origin header it is
 * given: what a page on another site, or a DNS-rebinding attack, would send.
 */
export function rawRequest(
  url: string,
  {
    method = 'GET',
    path = '/',
    headers = {},
    body,
    timeoutMs,
  }: { method?: string; path?: string; headers?: Record<string, string>; body?: Buffer; timeoutMs?: number },
): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, method, path, headers, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`no answer from ${method} ${path} within ${timeoutMs} ms`)));
    req.end(body);
  });
}

/**
 * Starts a POST whose body is only partly sent; `destroy()` then drops the connection, as a
 * client that gives up during its upload (or during decoding, if `sent` is the whole body).
 */
export function startUpload(
  url: string,
  path: string,
  { body, contentType }: { body: Buffer; contentType: string },
  sent: number,
): { destroy(): void; response: Promise<RawResponse | Error> } {
  const { hostname, port } = new URL(url);
  const req = httpRequest({
    hostname,
    port,
    method: 'POST',
    path,
    headers: { 'content-type': contentType, 'content-length': String(body.length) },
  });
  const response = new Promise<RawResponse | Error>((resolve) => {
    req.on('response', (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      res.on('error', resolve);
    });
    req.on('error', resolve);
  });
  req.write(body.subarray(0, sent));
  if (sent >= body.length) req.end();
  return { destroy: () => req.destroy(), response };
}

/** The sum of a metric's series whose labels include `labels`, read from /metrics. */
export async function metricValue(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  for (const [, labelText = '', value] of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))) {
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) sum += Number(value);
  }
  return sum;
}
