/**
 * The middleware every request passes: security headers, the request metrics, and the 404 for
 * what no router answered.
 */
import type { RequestHandler } from 'express';
import { ROUTES, STATIC_PREFIX } from './context.ts';
import { HttpError } from './errors.ts';
import type { ServerMetrics } from './metrics.ts';

/** No inline script or style anywhere: the page's JS and CSS are files under /static. */
const CSP = [
  "default-src 'none'",
  // 'wasm-unsafe-eval': compiling WebAssembly, for captioning on the device (docs/browser.md); no eval of JavaScript.
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  // Our own pages' posts carry their Origin (with no-referrer it would be "null"); other sites get nothing.
  'Referrer-Policy': 'same-origin',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'camera=(), microphone=(), geolocation=()',
};

export const securityHeaders: RequestHandler = (_req, res, next) => {
  res.set(SECURITY_HEADERS);
  next();
};

const KNOWN_ROUTES = new Set<string>(Object.values(ROUTES));

/**
 * The route a request is counted under: the route its path names, `/static` for the page's
 * files, `unmatched` for anything else (so that made-up paths cannot grow the label set). It is
 * read from the URL as received, which mounted middleware (express.static) rewrites for a while.
 */
export function routeLabel(originalUrl: string): string {
  const path = originalUrl.split('?')[0] ?? '';
  if (KNOWN_ROUTES.has(path)) return path;
  if (path === STATIC_PREFIX || path.startsWith(`${STATIC_PREFIX}/`)) return STATIC_PREFIX;
  return 'unmatched';
}

/**
 * Counts each request by method, route and status once its response ends, and times it. A
 * request whose connection closed before its answer was complete counts as 499: the client left.
 */
export function countRequests(metrics: ServerMetrics): RequestHandler {
  return (req, res, next) => {
    const start = performance.now();
    res.once('close', () => {
      const route = routeLabel(req.originalUrl);
      const status = res.writableFinished ? String(res.statusCode) : '499';
      metrics.requests.inc({ method: req.method, route, status });
      metrics.latency.observe((performance.now() - start) / 1000, { route });
    });
    next();
  };
}

export const notFound: RequestHandler = (req, _res, next) => {
  next(new HttpError(404, `no page at ${req.method} ${req.path}`));
};
