import { defineConfig } from 'vitest/config';

// The fault-injection suite (npm run test:faults): it starts, stops and restarts its own
// Temporal dev server and PostgreSQL, so it runs apart from the normal suite and its
// globalSetup. Scenarios run one at a time: each owns the machine while it injects a fault.
// Files are named *.fault.ts, so the normal suite (test/**/*.test.ts) never picks them up.
export default defineConfig({
  test: {
    include: ['test/faults/**/*.fault.ts'],
    fileParallelism: false,
    testTimeout: 15 * 60_000,
    hookTimeout: 5 * 60_000,
    teardownTimeout: 120_000,
  },
});
