import { after } from "node:test";

/**
 * Cleanup that runs when the test file ends, in reverse order of
 * registration (callers before providers before servers).
 *
 * The `after` hook is registered while this module loads, so it hangs off the
 * file's root test: an `after` called later from inside a `before` hook would
 * belong to that hook and run as soon as the hook returned.
 */
const tasks: Array<() => unknown> = [];

after(async () => {
  for (const task of tasks.reverse()) {
    try {
      await task();
    } catch (err) {
      console.error("cleanup failed:", err);
    }
  }
});

export function onFileEnd(task: () => unknown): void {
  tasks.push(task);
}
