// Counts a vitest JSON report (--reporter=json): passed, failed (a file that fails to load has no
// failed test in it, but it did fail) and skipped. Shared by test.mjs and ci.mjs.
import { readFileSync } from "node:fs";

/** The counts of the report at `file`, or null when there is none (vitest did not get to write it). */
export function readSummary(file) {
  let results;
  try {
    results = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return null;
  }
  const passed = results.numPassedTests ?? 0;
  const skipped = (results.numPendingTests ?? 0) + (results.numTodoTests ?? 0);
  const brokenFiles = (results.testResults ?? []).filter(
    (f) => f.status === "failed" && !(f.assertionResults ?? []).some((t) => t.status === "failed"),
  ).length;
  return { passed, failed: (results.numFailedTests ?? 0) + brokenFiles, skipped };
}

/** `N passed, N failed[, N skipped]` */
export const summaryLine = ({ passed, failed, skipped }) =>
  `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`;
