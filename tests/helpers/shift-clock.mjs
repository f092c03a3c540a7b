// Preloaded (`--import`) by the etcd fault test: shifts Date.now() by CCCI_TEST_CLOCK_SHIFT_MS, as a
// wall clock stepped an hour either way would, to show that the lease's timing never reads it.
const shift = Number(process.env.CCCI_TEST_CLOCK_SHIFT_MS ?? 0);
const wall = Date.now;
Date.now = () => wall() + shift;
