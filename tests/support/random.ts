// A small seeded PRNG for the chaos, property and fuzz suites: every random choice a test makes
// comes from one of these, so a printed seed replays the same choices (timing aside).
//
// The generator is sfc32 (Chris Doty-Humphrey's Small Fast Chaotic PRNG, 128-bit state), seeded
// from one 32-bit number through splitmix32. Not cryptographic; plenty for tests.

/** Reads a seed from `env[name]` (decimal or 0x-hex), else returns `fallback`. */
export function seedFrom(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback >>> 0;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer seed, got ${JSON.stringify(raw)}`);
  return value >>> 0;
}

export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    // splitmix32 spreads one 32-bit seed over the 128-bit state.
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** A uniform float in [0, 1). */
  float(): number {
    return this.u32() / 2 ** 32;
  }

  /** A uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    if (hi < lo) throw new Error(`Random.int: empty range [${lo}, ${hi}]`);
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Random.pick: empty array');
    return items[this.int(0, items.length - 1)]!;
  }

  /** One element, chosen with the given relative weights. */
  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    const total = choices.reduce((sum, [, w]) => sum + w, 0);
    let x = this.float() * total;
    for (const [item, w] of choices) {
      x -= w;
      if (x < 0) return item;
    }
    return choices[choices.length - 1]![0];
  }

  /** A shuffled copy (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  /** `length` characters drawn from `alphabet` (a string, or an array of code-point strings). */
  string(alphabet: string | readonly string[], length: number): string {
    const chars = typeof alphabet === 'string' ? [...alphabet] : alphabet;
    let out = '';
    for (let i = 0; i < length; i++) out += this.pick(chars);
    return out;
  }

  /** A fresh generator whose seed is drawn from this one (independent streams per sub-test). */
  fork(): Random {
    return new Random(this.u32());
  }
}

/** Characters that tend to break parsers and path handling. */
export const NASTY_CHARS: readonly string[] = [
  '/',
  '\\',
  '.',
  '..',
  '\0',
  '\n',
  '\r',
  '\t',
  ' ',
  '"',
  "'",
  '`',
  '$',
  '{',
  '}',
  '[',
  ']',
  ':',
  ',',
  '-',
  '_',
  '*',
  '?',
  '~',
  '%',
  '#',
  '|',
  '&',
  ';',
  '<',
  '>',
  '=',
  '+',
  '@',
  '!',
  'A',
  'Z',
  'é',
  'ß',
  'İ',
  'ſ',
  'K',
  '\u00a0',
  '\u200b',
  '\ufeff',
  '\u2028',
  '\ud800',
  '😀',
];

/** Lower-case DNS-ish characters, so mutations stay near the valid space too. */
export const DNS_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789-.';

/**
 * A mutation of `input`: a few random edits (insert, delete, replace, duplicate a slice, swap,
 * truncate, case-flip, splice in a nasty character or a long run). Often still close to valid,
 * which is where parsers' edge cases live.
 */
export function mutate(rng: Random, input: string, extra: readonly string[] = NASTY_CHARS): string {
  let s = input;
  const edits = rng.int(1, 4);
  for (let i = 0; i < edits; i++) {
    const at = rng.int(0, s.length);
    switch (rng.int(0, 9)) {
      case 0:
        s = s.slice(0, at) + rng.pick(extra) + s.slice(at);
        break;
      case 1:
        s = s.slice(0, at) + s.slice(at + rng.int(1, 3));
        break;
      case 2:
        s = s.slice(0, at) + rng.pick(extra) + s.slice(at + 1);
        break;
      case 3: {
        const from = rng.int(0, s.length);
        const piece = s.slice(from, from + rng.int(1, 12));
        s = s.slice(0, at) + piece + s.slice(at);
        break;
      }
      case 4:
        s = s.slice(0, at);
        break;
      case 5:
        s = s.slice(0, at) + (rng.chance(0.5) ? s.slice(at).toUpperCase() : s.slice(at).toLowerCase());
        break;
      case 6:
        s = s.slice(0, at) + rng.string(DNS_CHARS, rng.int(1, 8)) + s.slice(at);
        break;
      case 7:
        s = s.slice(0, at) + rng.pick(extra).repeat(rng.int(2, 300)) + s.slice(at);
        break;
      case 8: {
        const j = rng.int(0, s.length);
        const [x, y] = [Math.min(at, j), Math.max(at, j)];
        s = s.slice(0, x) + s.slice(y, y + 1) + s.slice(x + 1, y) + s.slice(x, x + 1) + s.slice(y + 1);
        break;
      }
      default:
        s = s.slice(0, at) + rng.string(['\n', ' ', '\t', '\r\n'], rng.int(1, 3)) + s.slice(at);
    }
  }
  return s;
}
