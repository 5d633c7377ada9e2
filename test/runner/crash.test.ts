/**
 * `kill -9` of the runner in the middle of a 50-instance backfill, then a restart:
 * every acknowledged state change and log line is still there, what was running kept
 * running and is adopted by the new runner (never running twice at once: an OS lock
 * proves it), and the rest of the backfill carries on to the end.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { ApiEvent } from "../../protocol/api";
import type { EngineRecord, Run } from "../../protocol/runner";
import { readRunnerInfo } from "../../common/runner-client";
import { findMarkedProcesses, processAlive } from "../../runner/exec/process-tree";
import { type Workspace, until, workspace } from "./fixture";

let ws: Workspace;

// `work` holds an exclusive lock on its bizdate for its whole life: if an attempt of the
// same bizdate ever starts while an earlier one is still alive, it records the overlap.
const FLOW = `import { workflow, shell } from "tideflow";
export const work = shell("work", { retries: 2, retryDelay: "50ms" },
  'mkdir -p "$OUT"; exec 9>"$OUT/lock.$BIZDATE"; flock -n 9 || { echo "$BIZDATE attempt $TIDEFLOW_ATTEMPT" >> "$OUT/overlaps"; exit 1; }; echo "work $BIZDATE attempt $TIDEFLOW_ATTEMPT"; sleep 0.3; echo "$BIZDATE" >> "$OUT/done"');
export const tail = shell("tail", { upstream: [work] }, 'echo "tail $BIZDATE"');
export default workflow("bf", { tasks: [work, tail] });
`;

before(() => {
  ws = workspace({ "bf.flow.ts": FLOW.replaceAll("$OUT", "$TIDEFLOW_TEST_OUT") });
});
after(() => ws.dispose());

function inst(run: Run, id: string) {
  return run.instances.find((i) => i.id === id)!;
}

test("kill -9 during a 50-instance backfill loses nothing acknowledged and never runs a task twice at once", async () => {
  const out = join(ws.dir, "out");
  process.env.TIDEFLOW_TEST_OUT = out;
  const started = await ws.cli(["runner", "start"]);
  assert.equal(started.code, 0, started.stderr);
  const first = readRunnerInfo(ws.dir)!;

  const client = await ws.client();
  const acked: EngineRecord[] = [];
  const ackedLines = new Map<string, string[]>();
  let run: Run | undefined;
  client.onEvent((e: ApiEvent) => {
    if (e.event === "records") acked.push(...e.records);
    if (e.event === "log") {
      const key = `${e.instanceId}/${e.task}/${e.attempt}`;
      ackedLines.set(key, [...(ackedLines.get(key) ?? []), ...e.text.slice(0, -1).split("\n")]);
    }
  });
  await client.request("subscribe", { records: true });
  ({ run } = await client.request("runs.create", {
    kind: "backfill",
    file: join(ws.dir, "bf.flow.ts"),
    from: "2026-09-01",
    to: "2026-10-20",
    parallelism: 4,
    by: "test",
  }));
  assert.equal(run.instances.length, 50);
  for (const inst of run.instances.slice(0, 20)) {
    await client.request("subscribe", { logs: { instanceId: inst.id, task: "work" } });
  }

  // Kill it while work is in full swing: some instances done, some running, most not started.
  await until("a dozen instances done", () => acked.filter((r) => r.type === "task.state" && r.task === "tail" && r.to === "success").length >= 12, 60_000);
  process.kill(first.pid, "SIGKILL");
  await until("the runner to die", () => !processAlive(first.pid));
  const ackedCopy = [...acked];
  const runningAtKill = new Set<string>();
  for (const r of ackedCopy) {
    if (r.type === "task.state" && r.to === "running") runningAtKill.add(`${r.instanceId}/${r.task}/${r.attempt}`);
    if (r.type === "attempt.ended") runningAtKill.delete(`${r.instanceId}/${r.task}/${r.attempt}`);
  }
  assert.ok(runningAtKill.size > 0, "some attempts were running at the kill");

  // Restart (the CLI starts a new runner) and wait for the backfill to finish.
  const status = await ws.cli(["runner", "start"]);
  assert.equal(status.code, 0, status.stderr);
  const second = readRunnerInfo(ws.dir)!;
  assert.notEqual(second.pid, first.pid);
  const c2 = await ws.client();
  try {
    // Hang guard, not a speed test: a backfill the new runner did not carry on never ends.
    const final = await until(
      "the backfill to end",
      async () => {
        const r = await c2.request("runs.get", { run: run!.id });
        return r.state !== "running" && r;
      },
      180_000,
    );
    assert.equal(final.state, "success", JSON.stringify(final.instances.filter((i) => i.tasks.some((t) => t.state !== "success")), null, 1).slice(0, 2000));

    // Every acknowledged task state change is in the recovered history, in order.
    for (const inst of final.instances) {
      for (const ti of inst.tasks) {
        const seen = ackedCopy.filter((r): r is Extract<EngineRecord, { type: "task.state" }> => r.type === "task.state" && r.instanceId === inst.id && r.task === ti.task);
        const history = ti.history.map((h) => `${h.at}:${h.from}>${h.to}:${h.cause}`);
        assert.deepEqual(history.slice(0, seen.length), seen.map((r) => `${r.at}:${r.from}>${r.to}:${r.cause}`), `${inst.bizdate} ${ti.task}`);
      }
    }
    // Attempts running at the kill kept running and were adopted: same attempt number,
    // their real exit recorded, their output whole. Only one whose process the journal did
    // not know yet (killed between spawn and its pid's record) ran again as a failover
    // attempt that spent no retry.
    let adoptedCount = 0;
    for (const key of runningAtKill) {
      const [instanceId, task, n] = key.split("/");
      const ti = final.instances.find((i) => i.id === instanceId)!.tasks.find((t) => t.task === task)!;
      const a = ti.attempts[Number(n) - 1];
      const log = await c2.request("logs.read", { run: run!.id, task, date: instanceId, attempt: Number(n) });
      if (a.exitCode === 0 && ti.attempts.length === Number(n)) {
        adoptedCount++;
        assert.match(log.text, /system WARN attempt \d+ adopted by runner/, key);
        if (task === "work") assert.match(log.text, new RegExp(`stdout INFO work ${inst(final, instanceId).bizdate.replace(/-/g, "")} attempt ${n}`), key);
      } else {
        assert.match(a.error ?? "", /runner restarted/, key);
        assert.equal(ti.attempts[Number(n)].cause, "recovery", `${key}: a failover attempt`);
        assert.equal(ti.attempts[Number(n)].retry, a.retry, `${key}: no retry spent`);
      }
    }
    assert.ok(adoptedCount > 0, "running attempts were adopted");
    // Every acknowledged log line is in its log file.
    let lines = 0;
    for (const [key, acknowledged] of ackedLines) {
      const [instanceId, task, n] = key.split("/");
      const log = await c2.request("logs.read", { run: run!.id, task, date: instanceId, attempt: Number(n) });
      const fileLines = new Set(log.text.split("\n"));
      for (const line of acknowledged) assert.ok(fileLines.has(line), `${key}: ${line}`);
      lines += acknowledged.length;
    }
    assert.ok(lines > 20, `${lines} acknowledged log lines checked`);
    // The OS lock never saw two live attempts of one bizdate, and every bizdate finished.
    assert.equal(existsSync(join(out, "overlaps")) ? readFileSync(join(out, "overlaps"), "utf8") : "", "");
    assert.equal(new Set(readFileSync(join(out, "done"), "utf8").trim().split("\n")).size, 50);
    // Nothing of the crashed runner's attempts is left running.
    for (const key of runningAtKill) assert.deepEqual(findMarkedProcesses(key), [], key);
  } finally {
    c2.close();
    client.close();
  }
});
