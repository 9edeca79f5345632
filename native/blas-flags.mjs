// Prints the compiler or linker flags for the system BLAS, for binding.gyp:
//   node blas-flags.mjs cflags|libs|defines
// OpenBLAS through pkg-config first, then any CBLAS pkg-config knows, then the usual library
// directories. Exits 1 (failing the build, which build.mjs reports) when no BLAS is found.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const what = process.argv[2];

function pkgConfig(pkg, flag) {
  try {
    return execFileSync('pkg-config', [flag, pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function find() {
  for (const pkg of ['openblas', 'cblas', 'blas']) {
    const libs = pkgConfig(pkg, '--libs');
    if (libs !== null) return { cflags: pkgConfig(pkg, '--cflags') ?? '', libs, openblas: pkg === 'openblas' };
  }
  const dirs = [
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/usr/lib64',
    '/usr/lib',
    '/usr/local/lib',
    '/opt/homebrew/opt/openblas/lib',
  ];
  const includes = [
    '/usr/include/x86_64-linux-gnu/openblas-pthread',
    '/usr/include/openblas',
    '/usr/local/include',
    '/opt/homebrew/opt/openblas/include',
  ];
  for (const dir of dirs) {
    if (['so', 'dylib'].some((ext) => existsSync(`${dir}/libopenblas.${ext}`))) {
      const inc = includes.find((d) => existsSync(`${d}/cblas.h`));
      return { cflags: inc ? `-I${inc}` : '', libs: `-L${dir} -lopenblas`, openblas: true };
    }
  }
  return null;
}

const found = find();
if (!found) {
  process.stderr.write('no BLAS found (install libopenblas-dev and pkg-config)\n');
  process.exit(1);
}
if (what === 'cflags') process.stdout.write(found.cflags);
else if (what === 'libs') process.stdout.write(found.libs);
else if (what === 'defines') process.stdout.write(found.openblas ? 'CAPTIONER_OPENBLAS' : 'CAPTIONER_CBLAS');
else {
  process.stderr.write(`usage: node blas-flags.mjs cflags|libs|defines\n`);
  process.exit(2);
}
