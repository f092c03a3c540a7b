// The host tools a run, a janitor or a teardown works with: abra and docker, both logging into the
// same log and listening to the same AbortSignal.
import { abraClient, type Abra } from './abra.js';
import { dockerClient, type Docker } from './docker.js';
import type { Log } from './log.js';

export interface HostTools {
  abra: Abra;
  docker: Docker;
  log: Log;
}

export function hostTools(options: { server: string; log: Log; signal?: AbortSignal }): HostTools {
  const { server, log, signal } = options;
  return { abra: abraClient({ server, log, signal }), docker: dockerClient({ log, signal }), log };
}
