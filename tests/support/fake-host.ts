// A host in a temp dir for running the built CLI without a swarm: test-only `abra` and `docker`
// scripts first on PATH (they log their argv and answer the listing calls from files), a HOME with
// a canonical ~/.abra and a recipe clone staged for CCCI_SKIP_FETCH=1, a runs dir and a lock dir.
// Every file lives under one temp dir that the processes.ts cleanup removes after the test.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { tempDir } from './processes.js';

// abra: `app ls` prints apps.json; everything else succeeds and does nothing.
const FAKE_ABRA = `#!/bin/sh
echo "abra $*" >> "$FAKE_STATE/calls"
case "$1 $2" in
  "app ls") cat "$FAKE_STATE/apps.json" ;;
esac
exit 0
`;

// docker: `service ls --format {{.Name}}` prints the services file (filtered by name= when asked);
// `service ls ... {{.Name}} {{.Replicas}}` prints the replicas file; everything else does nothing.
const FAKE_DOCKER = `#!/bin/sh
echo "docker $*" >> "$FAKE_STATE/calls"
case "$*" in
  *"{{.Name}} {{.Replicas}}"*) cat "$FAKE_STATE/replicas" ;;
  "service ls --filter name="*) prefix="\${4#name=}"; grep "^$prefix" "$FAKE_STATE/services" || true ;;
  "service ls --format"*) cat "$FAKE_STATE/services" ;;
esac
exit 0
`;

export interface FakeHost {
  root: string;
  home: string;
  runs: string;
  locks: string;
  bin: string;
  /** Environment for the CLI: PATH, HOME, FAKE_STATE, CCCI_RUNS_DIR, CCCI_APP_LOCK_DIR, CCCI_SKIP_FETCH=1. */
  env: NodeJS.ProcessEnv;
  /** Every abra and docker call so far, one argv line each. */
  calls(): string[];
  /** Sets what `abra app ls --machine` prints. */
  apps(json: unknown): void;
  /** Sets the service names `docker service ls` prints. */
  services(names: string[]): void;
}

/** A fresh fake host with a staged clone of each recipe (a git repo with one commit). */
export function fakeHost(recipes: string[] = ['x']): FakeHost {
  const root = tempDir('ccci-fake-host-');
  const bin = join(root, 'bin');
  const home = join(root, 'home');
  const runs = join(root, 'runs');
  const locks = join(root, 'locks');
  for (const dir of [bin, runs, locks, join(home, '.abra', 'servers', 'default'), join(home, '.abra', 'catalogue')])
    mkdirSync(dir, { recursive: true });
  writeFileSync(join(bin, 'abra'), FAKE_ABRA);
  writeFileSync(join(bin, 'docker'), FAKE_DOCKER);
  chmodSync(join(bin, 'abra'), 0o755);
  chmodSync(join(bin, 'docker'), 0o755);
  for (const file of ['calls', 'services', 'replicas']) writeFileSync(join(root, file), '');
  writeFileSync(join(root, 'apps.json'), '{}');
  const gitEnv = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' };
  for (const recipe of recipes) {
    const tree = join(home, '.abra', 'recipes', recipe);
    mkdirSync(tree, { recursive: true });
    // The smallest recipe cc-ci reads: one compose file with one service.
    writeFileSync(join(tree, 'compose.yml'), 'version: "3.8"\nservices:\n  app:\n    image: ccci/busybox:latest\n');
    execFileSync('git', ['init', '-q'], { cwd: tree, env: gitEnv });
    execFileSync('git', ['add', '-A'], { cwd: tree, env: gitEnv });
    execFileSync('git', ['commit', '-q', '-m', 'init'], { cwd: tree, env: gitEnv });
  }
  return {
    root,
    home,
    runs,
    locks,
    bin,
    env: {
      PATH: `${bin}:${process.env.PATH}`,
      HOME: home,
      FAKE_STATE: root,
      CCCI_RUNS_DIR: runs,
      CCCI_APP_LOCK_DIR: locks,
      CCCI_SKIP_FETCH: '1',
      // No Engine socket: the runner's waits read through the fake docker above, never the real daemon.
      DOCKER_HOST: 'tcp://fake-host.invalid:2375',
    },
    calls: () => readFileSync(join(root, 'calls'), 'utf8').split('\n').filter(Boolean),
    apps: (json) => writeFileSync(join(root, 'apps.json'), typeof json === 'string' ? json : JSON.stringify(json)),
    services: (names) => writeFileSync(join(root, 'services'), names.map((name) => `${name}\n`).join('')),
  };
}
