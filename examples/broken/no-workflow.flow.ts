// DELIBERATELY BROKEN: a workflow file that parses but has no `export default workflow(...)`.
// missing-workflow is reported for the file (at its start); the tasks are never scheduled.
import { task, shell } from "tideflow";

export const extract = task("extract", async (ctx) => {
  ctx.log.info(`extracting ${ctx.bizdate}`);
});

export const load = shell("load", { upstream: [extract] }, "echo load");

// missing-workflow: the workflow was never written (or not default-exported)
export const pipeline = [extract, load];
