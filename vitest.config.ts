import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Compiles dist/ and rebuilds the addon from the current sources before any test file runs:
    // the helpers and the CLI that tests spawn run what the tests import.
    globalSetup: ['tests/support/global-setup.ts'],
    // Real processes, real locks, a real swarm: give slow machines room, never retry a flake away.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: one worker per core keeps kernel-timing assertions honest.
    maxWorkers: 2,
    pool: 'forks',
    reporters: ['default'],
  },
});
