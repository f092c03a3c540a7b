import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Real processes, real locks, a real swarm: give slow machines room, never retry a flake away.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: one worker per core keeps kernel-timing assertions honest.
    maxWorkers: 2,
    pool: 'forks',
    reporters: ['default'],
  },
});
