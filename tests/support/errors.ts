// What a call threw, for tests that assert on the error itself.

/** The error `fn` threw; fails the test if it returned instead. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('did not throw');
}
