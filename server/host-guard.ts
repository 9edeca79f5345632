/**
 * Defence against DNS rebinding and cross-site posts. A page on another site can rebind its own
 * name to 127.0.0.1 and then read this server's pages as "same origin"; its requests still carry
 * that name in `Host`. So a request is answered only when its Host names this server: the bound
 * address, `localhost`, `127.0.0.1`, `[::1]`, the machine's own addresses when bound to every
 * interface, and the names given with `--allowed-host` (421 otherwise). A state-changing request
 * (POST) that a page of another origin sent is refused with 403, whatever its Host.
 */
import { networkInterfaces } from 'node:os';
import type { RequestHandler } from 'express';
import { ForeignOriginError, MisdirectedError } from './errors.ts';

/** The names a loopback server always answers to. */
export const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '[::1]'] as const;

/** Methods that only read; any other method changes state and must come from this origin. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Hosts the server answers to, normalised (lower case, no port, IPv6 in brackets). */
export interface HostPolicy {
  /** Every name and address a request's Host may carry. */
  allowed: ReadonlySet<string>;
  /** The names given with `--allowed-host`: a page served under one of them may post. */
  named: ReadonlySet<string>;
}

/**
 * A host name as it is compared: lower case, without a trailing dot or a port, an IPv6 address
 * in brackets. `"LocalHost.:3000"` → `"localhost"`, `"::1"` and `"[::1]:80"` → `"[::1]"`.
 */
export function normaliseHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end > 0 ? h.slice(0, end + 1) : h;
  }
  if (h.split(':').length > 2) return `[${h}]`; // a bare IPv6 address (from --host or os)
  h = h.replace(/:\d*$/, '');
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

function isWildcard(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '[::]' || host === '[::0]';
}

/** The machine's own interface addresses (for a server bound to every interface). */
function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .filter((a) => !a.address.includes('%')) // link-local with a zone: not usable in a Host header
    .map((a) => normaliseHost(a.address));
}

/**
 * The host policy of a server bound to `boundHost` (`--host`), answering also to `extra`
 * (`--allowed-host`). Bound to every interface (0.0.0.0 or ::), it answers to each of the
 * machine's addresses; its names (as DNS or a proxy know them) must be given in `extra`.
 */
export function hostPolicy(boundHost: string, extra: readonly string[] = []): HostPolicy {
  const bound = normaliseHost(boundHost);
  const named = new Set(extra.map(normaliseHost).filter((h) => h !== ''));
  const allowed = new Set<string>([...LOOPBACK_HOSTS, ...named]);
  if (isWildcard(bound)) for (const address of interfaceAddresses()) allowed.add(address);
  else allowed.add(bound);
  return { allowed, named };
}

/** `http://name:port` → [name, port]; the port defaults to the scheme's. Null for `null` or junk. */
function originParts(origin: string): { host: string; port: string; scheme: string } | null {
  try {
    const url = new URL(origin);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    return {
      host: normaliseHost(url.hostname),
      port: url.port || (url.protocol === 'https:' ? '443' : '80'),
      scheme: url.protocol,
    };
  } catch {
    return null; // "null" (a sandboxed frame or a file: page) or not a URL
  }
}

/**
 * Whether `origin` is this server as the client reached it (`host`, the request's Host), or a
 * name given with `--allowed-host` (e.g. the public name in front of a proxy).
 */
export function isSameOrigin(origin: string, host: string, policy: HostPolicy): boolean {
  const o = originParts(origin);
  if (!o) return false;
  if (policy.named.has(o.host)) return true;
  const port = /:(\d+)$/.exec(host.startsWith('[') ? host.slice(host.indexOf(']')) : host)?.[1];
  // A Host without a port was reached on the scheme's default port, the scheme the page used.
  return o.host === normaliseHost(host) && o.port === (port ?? (o.scheme === 'https:' ? '443' : '80'));
}

/**
 * Whether a state-changing request was sent by another site. Its `Origin` decides when it names
 * one; a browser sends `Origin: null` for a page whose referrer policy hides it, and then its
 * fetch metadata (`Sec-Fetch-Site`, which a page cannot set) says whether the page was this
 * origin. A request with neither (curl, scripts) is not a browser's cross-site request.
 */
export function isForeignRequest(
  origin: string | undefined,
  fetchSite: string | undefined,
  host: string,
  policy: HostPolicy,
): boolean {
  if (origin !== undefined && origin !== 'null') return !isSameOrigin(origin, host, policy);
  if (fetchSite !== undefined) return fetchSite !== 'same-origin' && fetchSite !== 'none';
  return origin === 'null';
}

/** Express middleware: 421 for a Host not in `policy`, 403 for a POST from another origin. */
export function guardHost(policy: HostPolicy): RequestHandler {
  return (req, _res, next) => {
    const host = req.headers.host;
    if (!host || !policy.allowed.has(normaliseHost(host))) {
      next(
        new MisdirectedError(
          host
            ? `this server does not answer to the host name "${normaliseHost(host).slice(0, 100)}"; its operator can allow it with --allowed-host`
            : 'the request has no Host header',
        ),
      );
      return;
    }
    const { origin } = req.headers;
    const fetchSite = req.get('sec-fetch-site');
    if (!SAFE_METHODS.has(req.method) && isForeignRequest(origin, fetchSite, host, policy)) {
      const from = origin !== undefined ? `Origin ${origin.slice(0, 100)}` : `Sec-Fetch-Site ${fetchSite}`;
      next(new ForeignOriginError(`a ${req.method} from another site (${from}) is refused`));
      return;
    }
    next();
  };
}
