// The root package's install script: builds the native kernels with node-gyp. It never fails
// the install: without a compiler, node-gyp or a BLAS it prints one line saying so, and the
// program runs on the pure-JavaScript kernels (model/runtime/native.ts says what that costs).
// CAPTIONER_NATIVE=0 skips the build. First it writes native/generated/ops.h, the operation
// codes the addon shares with TypeScript, from native/ops.json (native/op-table.mjs).
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeOpTableHeader } from './op-table.mjs';

const here = dirname(fileURLToPath(import.meta.url));

function nodeGyp() {
  // npm passes the path of its bundled node-gyp to install scripts.
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return [process.execPath, fromNpm];
  const bundled = join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  if (existsSync(bundled)) return [process.execPath, bundled];
  return ['node-gyp'];
}

function main() {
  if (process.env.CAPTIONER_NATIVE === '0') {
    console.warn('captioner: CAPTIONER_NATIVE=0, not building the native kernels');
    return;
  }
  try {
    createRequire(import.meta.url).resolve('node-addon-api');
  } catch {
    console.warn('captioner: node-addon-api is not installed; native kernels not built');
    return;
  }
  rmSync(join(here, 'build'), { recursive: true, force: true });
  writeOpTableHeader();
  const [cmd, ...gyp] = nodeGyp();
  const args = [...gyp, 'rebuild', '--loglevel=warn'];
  // Node's own headers (Debian's nodejs ships them) spare node-gyp a download it cannot make here.
  const prefix = join(dirname(process.execPath), '..');
  if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include/node/node_api.h')))
    args.push(`--nodedir=${prefix}`);
  const started = Date.now();
  const result = spawnSync(cmd, args, { cwd: here, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (result.status === 0) {
    console.warn(
      `captioner: native kernels built in ${((Date.now() - started) / 1000).toFixed(0)} s (native/build/Release/captioner_native.node)`,
    );
    return;
  }
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? String(result.error) : ''}`;
  const reason = output.includes('no BLAS found')
    ? 'no BLAS found (apt-get install libopenblas-dev pkg-config)'
    : (output
        .trim()
        .split('\n')
        .filter((l) => /error/i.test(l))[0] ?? `node-gyp exited with ${result.status}`);
  console.warn(
    `captioner: native kernels NOT built: ${reason}. Training runs on the pure-JavaScript kernels, some 100x slower (docs/performance.md).`,
  );
}

try {
  main();
} catch (err) {
  console.warn(`captioner: native kernels NOT built: ${err instanceof Error ? err.message : String(err)}`);
}
