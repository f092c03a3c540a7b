// The timings recorder's arithmetic (docs/operations.md#timings): time outside cc-ci is the union
// of its intervals, never counted twice where a wait's check (a subprocess) overlaps the wait; the
// reaction figures are null until a wait ended on an event.
import { performance } from 'node:perf_hooks';

import { describe, expect, it } from 'vitest';

import { timings } from '../../runner/host/timings.js';

describe('the timings recorder', () => {
  it('has no reaction figures before a wait ended on an event, then median, p90 and max of them', () => {
    expect(timings.report().reaction).toEqual({ events: 0, medianMs: null, p90Ms: null, maxMs: null });
    for (const ms of [9, 1, 5]) timings.reacted(ms);
    expect(timings.report().reaction).toEqual({ events: 3, medianMs: 5, p90Ms: 9, maxMs: 9 });
  });

  it('counts overlapping outside intervals once, and the rest of the wall time as overhead', async () => {
    const base = timings.report().externalMs;
    const start = performance.now() + 1_000; // after anything recorded so far
    timings.outsideBetween(start, start + 10);
    timings.outsideBetween(start + 5, start + 20); // a check inside a wait: overlaps it
    timings.outsideBetween(start + 30, start + 40);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const report = timings.report();
    expect(report.externalMs - base).toBeCloseTo(30, 0);
    expect(report.overheadMs).toBeCloseTo(report.wallMs - report.externalMs, 0);
    expect(report.overheadShare).toBeCloseTo(report.overheadMs / report.wallMs, 3);
  });

  it('records spans in start order, a failing one too', async () => {
    await timings.span('outer', async () => {
      await timings.span('inner', () => Promise.resolve());
      await expect(timings.span('failing', () => Promise.reject(new Error('no')))).rejects.toThrow('no');
    });
    const names = timings.report().spans.map((span) => span.name);
    expect(names.slice(-3)).toEqual(['outer', 'inner', 'failing']);
    for (const span of timings.report().spans) expect(span.durationMs).toBeGreaterThanOrEqual(0);
  });
});
