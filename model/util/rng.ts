/**
 * A small seeded random number generator whose whole state is one 32-bit integer, so that it
 * can be saved in a checkpoint and restored exactly. (mulberry32: Tommy Ettinger's public-domain
 * generator; fast, and good enough for shuffling, coin flips and weight initialisation.)
 */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniform float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A standard normal sample (Box–Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** A Fisher–Yates shuffle of a copy of `items`. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  /** The state, for checkpoints. */
  getState(): number {
    return this.state;
  }
}

/**
 * A seed derived from a base seed and a path of integers (e.g. seed, epoch), so that every
 * epoch's shuffle and every step's coin flips come from their own stream: resuming at step s
 * needs only the base seed and s, never a replay of the steps before it.
 */
export function deriveSeed(seed: number, ...path: number[]): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const p of [...path, path.length]) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

const MASK64 = (1n << 64n) - 1n;
/** 2^64 / φ, odd: the increment of splitmix64's Weyl sequence. */
const GOLDEN_GAMMA = 0x9e3779b97f4a7c15n;

/** splitmix64's finaliser (Steele, Lea & Flood 2014; Stafford's "Mix13" constants): a bijection of 64-bit words. */
function mix64(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/**
 * A seed hashed from a base seed and a path of integers, with no structure shared between
 * seeds: unlike `deriveSeed`, which XORs the seed with the first path element before mixing (so
 * deriveSeed(s, i) = deriveSeed(t, i ^ s ^ t) for 32-bit seeds), the seed is mixed on its own
 * first (splitmix64's first output for state `seed`), then each path element is added and the
 * 64-bit word mixed again. Two different (seed, path) inputs give the same 64-bit word only if
 * their mixed seeds differ by exactly a path difference (probability about 2^-31 for a pair
 * of seeds and paths below 2^32); the 32 bits returned are its top half.
 *
 * `deriveSeed` stays as it is: training data order, sampling and resume depend on its values.
 * Seed and path elements: safe integers (a negative one wraps modulo 2^64).
 */
export function hashSeed(seed: number, ...path: number[]): number {
  for (const v of [seed, ...path]) {
    if (!Number.isSafeInteger(v)) throw new RangeError(`hashSeed: seed and path must be safe integers, got ${v}`);
  }
  let h = mix64((BigInt(seed) + GOLDEN_GAMMA) & MASK64);
  for (const p of path) h = mix64((h + BigInt(p) + GOLDEN_GAMMA) & MASK64);
  return Number(h >> 32n);
}
