/**
 * `tideflow runner stop` while attempts run: they are ended and recorded as ended by the
 * stop, no retry is spent and nothing is journaled that did not happen; the next runner
 * runs them again as failover attempts (cause `recovery`) that keep their retry count.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { EngineRecord, Run } from "../../protocol/runner";
import { type Workspace, until, workspace } from "./fixture";

let ws: Workspace;

before(() => {
  ws = workspace({
    "slow.flow.ts": `import { workflow, shell } from "tideflow";
export const slow = shell("slow", { retries: 2, retryDelay: "100ms" }, 'echo "attempt $TIDEFLOW_ATTEMPT"; [ "$TIDEFLOW_ATTEMPT" -gt 1 ] || sleep 300');
export const next = shell("next", { upstream: [slow] }, "echo next");
export default workflow("slow", { tasks: [slow, next] });
`,
  });
});
after(() => ws.dispose());

async function getRun(id: string): Promise<Run> {
  const client = await ws.client();
  try {
    return await client.request("runs.get", { run: id });
  } finally {
    client.close();
  }
}

function journal(): EngineRecord[] {
  return readFileSync(join(ws.dir, ".tideflow", "journal"), "utf8")
    .split("\n")
    .slice(1)
    .filter((l) => l.length > 9)
    .map((l) => JSON.parse(l.slice(9)) as EngineRecord);
}

test("runner stop with retries left spends no retry and journals no attempt that never ran; the next runner runs a failover attempt", async () => {
  const started = await ws.cli(["test", "slow.flow.ts", "--detach"]);
  assert.equal(started.code, 0, started.stderr);
  const id = started.stdout.trim();
  await until("slow to run with a pid", async () => (await getRun(id)).instances[0].tasks[0].attempts[0]?.pid !== undefined);
  const instanceId = (await getRun(id)).instances[0].id;

  const stopped = await ws.cli(["runner", "stop"]);
  assert.equal(stopped.code, 0, stopped.stderr);
  const records = journal();
  const startedAttempts = records.filter((r) => r.type === "attempt.started" && r.task === "slow");
  assert.equal(startedAttempts.length, 1, "only the attempt that ran is in the journal");
  const ended = records.filter((r) => r.type === "attempt.ended" && r.task === "slow");
  assert.equal(ended.length, 1);
  assert.match((ended[0] as { error?: string }).error ?? "", /runner stop/);
  const log = readFileSync(join(ws.dir, ".tideflow", "logs", instanceId, "slow.1.log"), "utf8");
  assert.doesNotMatch(log, /not starting/);
  assert.match(log, /ended by the runner stopping/);

  // The next command starts a runner; the task runs again as a failover attempt.
  const shown = await ws.cli(["runner", "start"]);
  assert.equal(shown.code, 0, shown.stderr);
  const run = await until("the run to succeed", async () => {
    const r = await getRun(id);
    return r.state === "success" && r;
  });
  const slow = run.instances[0].tasks[0];
  assert.deepEqual(
    slow.attempts.map((a) => [a.n, a.cause, a.retry]),
    [
      [1, "scheduler", 0],
      [2, "recovery", 0],
    ],
  );
  assert.ok(slow.history.some((h) => h.from === "running" && h.to === "waiting" && h.cause === "recovery"));
  assert.equal(run.instances[0].tasks[1].state, "success");
});
