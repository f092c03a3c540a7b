// The cc-ci library. The native addon's raw exports live in 'cc-ci/native'.
export * from './abra-dir.js';
export * from './janitor.js';
export * from './lifetime.js';
export * from './lock.js';
export * from './naming.js';
export * from './run-state.js';
