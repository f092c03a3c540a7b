// The etcd lock's generation (its fencing token) on what a run deploys: once the app has
// converged, each service of its stack gets the label ccci.generation=<n>, a change of the
// service's own labels that restarts no task. A janitor leaves alone a stack labelled with a newer
// generation than its own acquisition: a run that took the app after it may be deploying there.
// docs/scale-out.md#generation
import type { Docker } from './docker.js';
import { exec } from './exec.js';

export const GENERATION_LABEL = 'ccci.generation';

/** The names of the stack's services, through the docker reads every wait uses. */
async function stackServices(docker: Docker, stack: string): Promise<string[]> {
  return (await docker.services(stack)).map((service) => service.name);
}

/** Labels every service of `stack` with `generation`. */
export async function labelGeneration(docker: Docker, stack: string, generation: string, signal?: AbortSignal): Promise<void> {
  for (const service of await stackServices(docker, stack)) {
    await exec('docker', ['service', 'update', '--detach', '--quiet', '--label-add', `${GENERATION_LABEL}=${generation}`, service], {
      signal,
      quiet: true,
    });
  }
}

/** The newest generation labelled on `stack` that is newer than `generation`, or null. */
export async function newerGeneration(docker: Docker, stack: string, generation: string, signal?: AbortSignal): Promise<string | null> {
  const services = await stackServices(docker, stack);
  if (services.length === 0) return null;
  const { stdout } = await exec('docker', ['service', 'inspect', '--format', `{{index .Spec.Labels "${GENERATION_LABEL}"}}`, ...services], {
    signal,
    quiet: true,
  });
  const newer = stdout
    .split('\n')
    .filter((label) => /^[0-9]+$/.test(label) && BigInt(label) > BigInt(generation))
    .sort((a, b) => (BigInt(a) < BigInt(b) ? 1 : -1));
  return newer[0] ?? null;
}
