import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Integration tests share one radosgw and start their own PostgreSQL clusters;
    // two forks match the two cores of CI machines.
    pool: "forks",
    maxWorkers: 2,
    globalSetup: ["test/helpers/global-setup.ts"],
  },
});
