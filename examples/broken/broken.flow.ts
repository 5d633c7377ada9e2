// DELIBERATELY BROKEN: every mistake below is on purpose, to show Tideflow's diagnostics.
// Each comment names the diagnostic code (SPEC §2) reported on the line just below it.
// The file still parses (no parse-error); see half-typed.flow.ts for that one, and
// duplicate.flow.ts for the second half of duplicate-workflow. Do not run it.
import { workflow, task, shell } from "tideflow";

const tenMinutes = "10m";

export const extract = task("extract", { retries: 2, retryDelay: "30s", timeout: "10m" }, async (ctx) => {
  ctx.log.info(`extracting ${ctx.bizdate}`);
});

// invalid-id: an id must match ^[A-Za-z_][A-Za-z0-9_-]*$ (no leading digit, no space)
export const load = shell("2nd load", { upstream: [extract] }, "echo load");

// duplicate-task: two tasks with the id "transform" (reported on each of the two ids)
export const transform = shell("transform", { upstream: [extract] }, "echo one");
// duplicate-task (the second one)
export const transformAgain = shell("transform", { upstream: [extract] }, "echo two");

export const report = shell(
  "report",
  {
    // unknown-upstream ×3: a typo, a missing task of an existing workflow, a missing workflow
    upstream: ["transfrom", "crm.no_such_task", "no_such_workflow.sync"],
  },
  "echo report",
);

// cycle: cycle_a → cycle_b → cycle_a
export const cycle_a = shell("cycle_a", { upstream: ["cycle_b"] }, "echo a");
// cycle (the other half)
export const cycle_b = shell("cycle_b", { upstream: [cycle_a] }, "echo b");

export const options = shell(
  "options",
  {
    // invalid-duration: not "500ms" / "30s" / "10m" / "2h" / a number of ms
    timeout: "10 minutes",
    // invalid-duration
    retryDelay: "soon",
    // invalid-option: retries must be an integer ≥ 0
    retries: -1,
    // invalid-option: unknown option key (a typo of "retries")
    retires: 3,
  },
  "echo options",
);

// not-static (information): timeout is a variable, so the analyzer does not guess it
export const dynamic = shell("dynamic", { timeout: tenMinutes }, "echo dynamic");

// task-not-in-workflow (warning): this constant is missing from the workflow's tasks
export const orphan = shell("orphan", "echo nobody runs me");

// duplicate-workflow: duplicate.flow.ts in this folder defines "broken_demo" too
export default workflow("broken_demo", {
  // invalid-cron: minute 61 is out of range
  schedule: "61 2 * * *",
  // invalid-timezone: not an IANA zone (China's zone is "Asia/Shanghai")
  timezone: "Asia/Beijing",
  // invalid-option: concurrency must be an integer ≥ 1
  concurrency: 0,
  tasks: [extract, load, transform, transformAgain, report, cycle_a, cycle_b, options, dynamic],
});
