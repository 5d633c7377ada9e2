/**
 * A workflow file with a dependency cycle runs nothing: not the whole workflow, not a
 * selection of its tasks (`--task`, with or without `--downstream`), not a backfill. The
 * refusal is the editor's: the file's errors, the cycle named (issue 20). Real CLI, real
 * runner.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { after, before, test } from "node:test";
import { type Workspace, workspace } from "../runner/fixture";

const FLOW = `import { workflow, shell } from "tideflow";

export const extract = shell("extract", { upstream: ["publish"] }, "echo extract > ran-extract");
export const transform = shell("transform", { upstream: [extract] }, "echo transform > ran-transform");
export const publish = shell("publish", { upstream: [transform] }, "echo publish > ran-publish");
export const lonely = shell("lonely", "echo lonely > ran-lonely");

export default workflow("cyclic", { timezone: "UTC", tasks: [extract, transform, publish, lonely] });
`;

let ws: Workspace;
before(() => {
  ws = workspace({ "cyclic.flow.ts": FLOW });
});
after(async () => {
  await ws.dispose();
});

const CYCLE = /cyclic\.flow\.ts has 3 errors; fix them first \(`tideflow check cyclic\.flow\.ts`\):\n {2}cyclic\.flow\.ts:3:\d+: Dependency cycle: /;

for (const args of [
  ["test", "cyclic.flow.ts", "--date", "2026-01-01"],
  ["test", "cyclic.flow.ts", "--date", "2026-01-01", "--task", "extract"],
  ["test", "cyclic.flow.ts", "--date", "2026-01-01", "--task", "lonely"],
  ["test", "cyclic.flow.ts", "--date", "2026-01-01", "--task", "transform", "--downstream"],
  ["backfill", "cyclic.flow.ts", "--from", "2026-01-01", "--to", "2026-01-03", "--task", "extract"],
]) {
  test(`tideflow ${args.join(" ")} is refused: the file has a cycle`, async () => {
    const r = await ws.cli(args);
    assert.equal(r.code, 1, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, CYCLE);
    assert.match(r.stderr, /extract → transform → publish → extract|transform → publish → extract → transform|publish → extract → transform → publish/);
    assert.deepEqual(readdirSync(ws.dir).filter((f) => f.startsWith("ran-")), [], "no task ran");
  });
}

test("tideflow check names the same cycle", async () => {
  const r = await ws.cli(["check", "cyclic.flow.ts"]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /Dependency cycle: /);
});
