// The last check before cc-ci acts on the host (a subprocess: abra, docker, a hook). A lock that can
// be lost, the etcd lease, registers a gate here that throws once its holder may no longer act, so
// a run paused past its lease, or cut off from etcd, makes no further docker call however its code
// got there (docs/scale-out.md#self-abort). With the flock backend no gate is ever registered.
const gates = new Set<() => void>();

/** Registers `gate`; returns its removal. */
export function addActGate(gate: () => void): () => void {
  gates.add(gate);
  return () => void gates.delete(gate);
}

/** Throws what the first closed gate throws. */
export function checkActGates(): void {
  for (const gate of gates) gate();
}
