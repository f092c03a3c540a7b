// The etcd lock's generation (its fencing token) on what a run deploys: once the app has
// converged, each service of its stack gets the label ccci.generation=<n>, a change of the
// service's own labels that restarts no task. A janitor leaves alone a stack labelled with a newer
// generation than its own acquisition: a run that took the app after it may be deploying there.
// docs/scale-out.md#generation
import { exec } from './exec.js';

export const GENERATION_LABEL = 'ccci.generation';

async function stackServices(stack: string, signal?: AbortSignal): Promise<string[]> {
  const { stdout } = await exec(
    'docker',
    ['service', 'ls', '--filter', `label=com.docker.stack.namespace=${stack}`, '--format', '{{.Name}}'],
    {
      signal,
      quiet: true,
    },
  );
  return stdout.split('\n').filter(Boolean);
}

/** Labels every service of `stack` with `generation`. */
export async function labelGeneration(stack: string, generation: string, signal?: AbortSignal): Promise<void> {
  for (const service of await stackServices(stack, signal)) {
    await exec('docker', ['service', 'update', '--detach', '--quiet', '--label-add', `${GENERATION_LABEL}=${generation}`, service], {
      signal,
      quiet: true,
    });
  }
}

/** The newest generation labelled on `stack` that is newer than `generation`, or null. */
export async function newerGeneration(stack: string, generation: string, signal?: AbortSignal): Promise<string | null> {
  const services = await stackServices(stack, signal);
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
