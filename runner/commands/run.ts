// `cc-ci run`: one recipe CI run (see runner/run.ts for the flow).
import { RUN_USAGE, parseRunConfig } from '../run/config.js';
import { runRecipeCi } from '../run/run.js';

export const summary = 'run one recipe CI: deploy under the app lock, the stages, teardown, results.json';
export const usage = RUN_USAGE;

export async function main(args: string[]): Promise<number> {
  return runRecipeCi(parseRunConfig(args));
}
