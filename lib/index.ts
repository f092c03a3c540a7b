// The cc-ci library. The native addon's raw exports live in 'cc-ci/native'.
export * from './lock.js';
export * from './naming.js';
