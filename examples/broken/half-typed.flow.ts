// DELIBERATELY BROKEN: a workflow file caught half typed, as the editor sees it while you
// type. It does not parse, so the analyzer reports parse-error (and nothing else it would
// have to guess at).
import { workflow, task, shell } from "tideflow";

export const extract = task("extract", { retries: 2 }, async (ctx) => {
  ctx.log.info(`extracting ${ctx.bizdate}`);
});

// parse-error: the upstream array is never closed ("]" missing before ", timeout")
export const load = shell("load", { upstream: [extract, timeout: "5m" }, "echo load");

export default workflow("half_typed", {
  tasks: [extract, load],
});
