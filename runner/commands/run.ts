// `cc-ci run`: one recipe CI run (see runner/run/run.ts for the flow). The flow and its config are
// imported in main, so `--help` loads neither them nor execa.
import { etcdEnvironment } from './output.js';

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
  ABRA_DIR                       replaced: the run sets it to <run dir>/abra (default: unset)
  CCCI_APP_LOCK_DIR              the lock dir (default /run/lock)
  CCCI_BASE_DOMAIN               the domain run apps live under (default ci.commoninternet.net)
  CCCI_CONVERGE_TIMEOUT_SECONDS  how long services may take to converge (default 600)
  CCCI_DEADLINE_SECONDS          the hard deadline for the whole run (default 3600)
  CCCI_EXPECTED_PPID             the pid the run's parent must have; cc-ci step sets it
                                 (default: unset)
  CCCI_GIT_BASE                  the git host's base URL (default https://git.autonomic.zone)
  CCCI_GIT_TOKEN                 a token for a private PR repository, sent as a header, never
                                 logged (default: unset)
  CCCI_HEALTH                    on or off: the HTTP health check through the ingress (default on)
  CCCI_INGRESS                   host:port of the reverse proxy apps answer through
                                 (default 127.0.0.1:443)
  CCCI_INGRESS_CA                a PEM file of CAs trusted besides the system's, for the ingress
                                 (default: unset)
  CCCI_LEGACY_LOCK_DIR           the old shared lock dir during a move; the run locks there too
                                 (default: unset)
  CCCI_MAX_DEPS                  how many dependencies a ccci.yml may declare (default 5)
  CCCI_QUICK                     1: the quick lane, as --quick (default 0)
  CCCI_RUN_ID                    the run id, naming its run dir (default DRONE_BUILD_NUMBER, else
                                 manual-<pid>)
  CCCI_RUNS_DIR                  where run dirs are made (default /var/lib/cc-ci-runs)
  CCCI_SERVER                    the abra server (default default)
  CCCI_SKIP_FETCH                1: copy the staged ~/.abra/recipes/<recipe> instead of fetching
                                 (default: unset)
  CCCI_TEARDOWN_BUDGET_SECONDS   how long teardown may take after the run ends (default 600)
  CCCI_TEST_TIMEOUT_SECONDS      how long one hook or test may run (default 900)
  CCCI_TESTS_DIR                 the operator's tests, in <dir>/<recipe>/ (default /etc/cc-ci/tests)
  CCCI_WARM_APPS                 warm app domains, comma-separated; the quick lane takes the
                                 recipe's among them (default: unset)
  DOCKER_HOST                    the Engine whose events the waits read: a unix:// socket, else
                                 they poll through docker (default /var/run/docker.sock)
  DRONE_BUILD_NUMBER             the run id when CCCI_RUN_ID is unset; Drone sets it
                                 (default: unset)
  HOME                           the home of ~/.abra, also handed to hooks and tests
                                 (default: the account's home dir; hooks get /)
  LANG                           handed to hooks and tests (default C.UTF-8)
  PATH                           must reach abra, docker, git and sh; handed to hooks and tests
                                 (default for them /usr/local/bin:/usr/bin:/bin)
  PR                             the PR number, as --pr (default 0)
  RECIPE                         the recipe, as --recipe (required)
  REF                            the PR head, as --ref (default: unset)
  SRC                            the repository REF lives in, as --src (default: unset)
  STAGES                         the stages to run, as --stages (default: all)
${etcdEnvironment(33)}

Exit codes: 0 green, 1 a stage failed or teardown left something, 2 bad input,
142 hard deadline, 143 cancelled (SIGTERM), 130 SIGINT, 129 SIGHUP.`;

export async function main(args: string[]): Promise<number> {
  const [{ parseRunConfig }, { runRecipeCi }] = await Promise.all([import('../run/config.js'), import('../run/run.js')]);
  return runRecipeCi(parseRunConfig(args));
}
