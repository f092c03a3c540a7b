// Where a run's wall time goes (docs/operations.md#timings): named spans (fetch, each deploy, each
// wait, each stage, hook and test, teardown), and the time spent outside cc-ci's own code — inside
// a subprocess, an HTTP request, a lock wait, or a wait for docker up to the event that ended it.
// The rest of the wall time is cc-ci's overhead. One recorder per process: a process runs one run.
import { performance } from 'node:perf_hooks';

/** Wall-clock milliseconds since the epoch, sub-millisecond, comparable with docker's `timeNano`. */
export function wallNowMs(): number {
  return performance.timeOrigin + performance.now();
}

export interface Span {
  name: string;
  /** From the process's start. */
  startMs: number;
  durationMs: number;
}

/** Null figures when no wait had to wait for an event (abra's own waits covered them all). */
export interface Reaction {
  /** Waits that ended on a docker event. */
  events: number;
  medianMs: number | null;
  p90Ms: number | null;
  maxMs: number | null;
}

export interface Timings {
  /** From the process's start to results.json. */
  wallMs: number;
  /** Inside a subprocess, an HTTP request, a lock wait, or waiting for docker before its event. */
  externalMs: number;
  overheadMs: number;
  /** overheadMs / wallMs. */
  overheadShare: number;
  /** From the docker event that ended a wait to cc-ci acting on it. */
  reaction: Reaction;
  spans: Span[];
}

const round = (ms: number): number => Math.round(ms * 10) / 10;

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
}

/** The union's length of possibly overlapping intervals (a wait's checks are subprocesses too). */
function unionMs(intervals: readonly (readonly [number, number])[]): number {
  const sorted = [...intervals].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let [start, end] = [-Infinity, -Infinity];
  for (const [s, e] of sorted) {
    if (s > end) {
      if (end > start) total += end - start;
      [start, end] = [s, e];
    } else end = Math.max(end, e);
  }
  if (end > start) total += end - start;
  return total;
}

class Recorder {
  private readonly spans: Span[] = [];
  private readonly outside: [number, number][] = [];
  private readonly reactions: number[] = [];

  /** Records `fn` as the span `name`. */
  async span<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await fn();
    } finally {
      this.spans.push({ name, startMs: start, durationMs: performance.now() - start });
    }
  }

  /** Records the span `name` from `start` (a performance.now() time) to now. */
  spanSince(name: string, start: number): void {
    this.spans.push({ name, startMs: start, durationMs: performance.now() - start });
  }

  /** Records `fn` as time outside cc-ci's own code (a subprocess, a request, a lock wait). */
  async outsideOf<T>(fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await fn();
    } finally {
      this.outside.push([start, performance.now()]);
    }
  }

  /** Marks `[start, end]` (performance.now() times) as time outside cc-ci's own code. */
  outsideBetween(start: number, end: number): void {
    if (end > start) this.outside.push([start, end]);
  }

  /** A wait ended `ms` after the docker event that ended it. */
  reacted(ms: number): void {
    this.reactions.push(Math.max(0, ms));
  }

  report(): Timings {
    const wallMs = performance.now();
    const externalMs = Math.min(wallMs, unionMs(this.outside));
    const sorted = [...this.reactions].sort((a, b) => a - b);
    return {
      wallMs: round(wallMs),
      externalMs: round(externalMs),
      overheadMs: round(wallMs - externalMs),
      overheadShare: Math.round(((wallMs - externalMs) / wallMs) * 10_000) / 10_000,
      reaction: {
        events: sorted.length,
        medianMs: quantile(sorted, 0.5),
        p90Ms: quantile(sorted, 0.9),
        maxMs: quantile(sorted, 1),
      },
      // In start order, an enclosing span before what it encloses.
      spans: [...this.spans]
        .sort((a, b) => a.startMs - b.startMs || b.durationMs - a.durationMs)
        .map((span) => ({ name: span.name, startMs: round(span.startMs), durationMs: round(span.durationMs) })),
    };
  }
}

export const timings = new Recorder();
