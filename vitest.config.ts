import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    // onnxruntime sessions use the cores themselves; two test files at a time is enough on 2 cores.
    maxWorkers: 2,
  },
});
