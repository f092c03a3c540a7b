// `cc-ci run`: one recipe CI run (see runner/run/run.ts for the flow). The flow and its config are
// imported in main, so `--help` loads neither them nor execa.
export const usage = `Usage: cc-ci run [--recipe NAME] [--ref REF] [--pr N] [--src OWNER/REPO] [--stages LIST] [--quick]

Runs one recipe's CI on this swarm host: lifetime guards, a per-run ABRA_DIR, fetch, janitor,
one deploy under the app lock, the stages (HTTP health through the ingress, the recipe's hooks
and tests: docs/recipes.md), teardown, results.json and junit.xml. Each option overrides the
variable the Drone step sets, named in parentheses.

Options:
  --recipe NAME       the recipe (RECIPE), required
  --ref REF           the PR head (REF)
  --src OWNER/REPO    the repository REF lives in, under CCCI_GIT_BASE (SRC); without both REF
                      and SRC, the recipe is fetched with 'abra recipe fetch'
  --pr N              the PR number (PR, default 0)
  --stages LIST       a comma-separated subset of install,upgrade,backup,restore,custom (STAGES,
                      default: all)
  --quick             the quick lane (CCCI_QUICK=1): upgrade the recipe's warm app in place to the
                      code under test, run upgrade and custom, always roll it back (docs/recipes.md)
  -h, --help          this help

Environment:
  CCCI_GIT_BASE                  the git host's base URL (default https://git.autonomic.zone)
  CCCI_GIT_TOKEN                 a token for a private PR repository (a header, never logged)
  CCCI_SERVER                    the abra server (default default)
  CCCI_CONVERGE_TIMEOUT_SECONDS  how long services may take to converge (default 600)
  CCCI_DEADLINE_SECONDS          the hard deadline for the whole run (default 3600)
  CCCI_TEARDOWN_BUDGET_SECONDS   how long teardown may take after the run ends (default 600)
  CCCI_SKIP_FETCH=1              copy the staged ~/.abra/recipes/<recipe> instead of fetching
  CCCI_INGRESS                   host:port of the reverse proxy apps answer through
                                 (default 127.0.0.1:443)
  CCCI_INGRESS_CA                a PEM file of CAs trusted besides the system's, for the ingress
  CCCI_HEALTH                    on (default) or off: the HTTP health check through the ingress
  CCCI_TESTS_DIR                 the operator's tests, in <dir>/<recipe>/ (default /etc/cc-ci/tests)
  CCCI_TEST_TIMEOUT_SECONDS      how long one hook or test may run (default 900)
  CCCI_MAX_DEPS                  how many dependencies a ccci.yml may declare (default 5)
  CCCI_WARM_APPS                 warm app domains; the quick lane takes the recipe's among them
  The lock dir, runs dir, base domain and run id: docs/concurrency.md#configuration-knobs.

Exit codes: 0 green, 1 a stage failed or teardown left something, 2 bad input,
142 hard deadline, 143 cancelled (SIGTERM), 130 SIGINT, 129 SIGHUP.`;

export async function main(args: string[]): Promise<number> {
  const [{ parseRunConfig }, { runRecipeCi }] = await Promise.all([import('../run/config.js'), import('../run/run.js')]);
  return runRecipeCi(parseRunConfig(args));
}
