/**
 * Backend selection. TF.js runs the same model on several backends; the fastest one that is
 * installed wins: CUDA through `@tensorflow/tfjs-node-gpu`, libtensorflow on the CPU through
 * `@tensorflow/tfjs-node`, then the pure-JavaScript CPU backend of `@tensorflow/tfjs`. The
 * first two are optional dependencies whose install scripts download libtensorflow, so on a
 * machine without that network they are simply absent. The 'cpu' backend runs the hot kernels
 * natively (model/runtime/native.ts, a BLAS-backed addon built at npm install) when the addon is built
 * and CAPTIONER_NATIVE is not 0.
 */
import * as tf from '@tensorflow/tfjs';
import { describeNative, enableNativeKernels } from './native.ts';

export const BACKENDS = ['node-gpu', 'node', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export class BackendError extends Error {
  override name = 'BackendError';
}

/** The npm package that provides each backend, and the TF.js backend name it registers. */
const PROVIDERS: Record<BackendName, { pkg: string | null; tfName: string }> = {
  'node-gpu': { pkg: '@tensorflow/tfjs-node-gpu', tfName: 'tensorflow' },
  node: { pkg: '@tensorflow/tfjs-node', tfName: 'tensorflow' },
  cpu: { pkg: null, tfName: 'cpu' },
};

let active: BackendName | null = null;

async function tryBackend(name: BackendName): Promise<string | null> {
  const { pkg, tfName } = PROVIDERS[name];
  try {
    if (pkg) await import(pkg);
    if (!(await tf.setBackend(tfName))) return `${pkg ?? 'tfjs'} loaded but backend "${tfName}" did not initialise`;
    await tf.ready();
    return null;
  } catch (err) {
    return `${pkg} is not installed or cannot load (${(err as Error).message.split('\n')[0]})`;
  }
}

/**
 * Selects a backend: `requested` (or the CAPTIONER_BACKEND environment variable) forces one
 * and fails when it is unavailable; otherwise the first that works, in the order of BACKENDS.
 * Idempotent: later calls return the backend already chosen.
 */
export async function selectBackend(requested?: string, log: (line: string) => void = () => {}): Promise<BackendName> {
  // Quiets the pure-JS backend's "install tfjs-node" banner, which would otherwise land in output.
  tf.env().set('PROD', true);
  const wanted = requested ?? process.env.CAPTIONER_BACKEND ?? undefined;
  if (active && (!wanted || wanted === active)) return active;
  if (wanted) {
    if (!(BACKENDS as readonly string[]).includes(wanted)) {
      throw new BackendError(`unknown backend "${wanted}"; expected one of ${BACKENDS.join(', ')}`);
    }
    const failure = await tryBackend(wanted as BackendName);
    if (failure) throw new BackendError(`backend "${wanted}" is not available: ${failure}`);
    active = wanted as BackendName;
  } else {
    for (const name of BACKENDS) {
      if ((await tryBackend(name)) === null) {
        active = name;
        break;
      }
    }
    if (!active) throw new BackendError('no TF.js backend could be initialised');
  }
  const native = active === 'cpu' ? `; ${describeNative(enableNativeKernels())}` : '';
  log(`backend: ${active} (TF.js ${tf.version.tfjs})${native}`);
  return active;
}

/** The backend in use, or null before selectBackend. */
export function activeBackend(): BackendName | null {
  return active;
}
