/**
 * A task instance in words (common/task-words.ts): the Instances row says its state and
 * the one fact that matters, short enough for a 300 px sidebar; a task set to success by
 * hand says so in the row, the facts and the details view (issue 20).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Attempt, HistoryEntry, TaskInstance } from "../../protocol/runner";
import { instanceState, liveFirst, setSuccessBy, taskFacts, taskHeadline } from "../../common/task-words";
import { detailsModel } from "../../client/details-model";

const T0 = Date.UTC(2026, 11, 1, 10, 0, 0);

function ti(state: TaskInstance["state"], attempts: Partial<Attempt>[], history: HistoryEntry[] = [], extra: Partial<TaskInstance> = {}): TaskInstance {
  return {
    task: "load",
    state,
    attempts: attempts.map((a, i) => ({ n: i + 1, startedAt: T0, cause: "scheduler", retry: 0, ...a }) as Attempt),
    history,
    ...extra,
  };
}

const killedThenSet: HistoryEntry[] = [
  { at: T0, from: "waiting", to: "running", cause: "scheduler", attempt: 1 },
  { at: T0 + 14_000, from: "running", to: "killed", cause: "operator", by: "vscode", attempt: 1 },
  { at: T0 + 20_000, from: "killed", to: "success", cause: "operator", by: "vscode" },
];

describe("task words", () => {
  test("set success by hand: the row, the facts", () => {
    const t = ti("success", [{ endedAt: T0 + 14_000, signal: "SIGTERM" }], killedThenSet);
    assert.equal(setSuccessBy(t), "vscode");
    assert.equal(taskHeadline(t), "success · set by vscode");
    assert.deepEqual(taskFacts(t), ["success", "set success by vscode", "attempt 1", "14 s", "SIGTERM"]);
  });

  test("a success of its own is not 'set'", () => {
    const own = ti("success", [{ endedAt: T0 + 3_200, exitCode: 0 }], [{ at: T0 + 3_200, from: "running", to: "success", cause: "scheduler", attempt: 1 }]);
    assert.equal(setSuccessBy(own), undefined);
    assert.equal(taskHeadline(own), "success · 3.2 s");
  });

  test("one fact per state, the one that matters", () => {
    assert.equal(taskHeadline(ti("failed", [{ endedAt: T0 + 1_000, exitCode: 3 }])), "failed · exit 3");
    assert.equal(taskHeadline(ti("failed", [{ endedAt: T0 + 60_000, signal: "SIGTERM", error: "timed out after 1m" }])), "failed · timed out");
    assert.equal(taskHeadline(ti("failed", [{ endedAt: T0 + 10, error: "could not start bash: ENOENT" }])), "failed · error");
    assert.equal(taskHeadline(ti("killed", [{ endedAt: T0 + 14_000, signal: "SIGKILL" }])), "killed · SIGKILL");
    assert.equal(taskHeadline(ti("running", [{}]), T0 + 12_000), "running · 12 s");
    assert.equal(taskHeadline(ti("running", [{ killRequestedAt: T0 + 5 }]), T0 + 12_000), "running · being killed");
    assert.match(taskHeadline(ti("waiting", [{ endedAt: T0 + 1_000, exitCode: 1 }], [], { retryAt: T0 + 30_000 })), /^waiting · retry at \d\d:\d\d:\d\d$/);
    assert.equal(taskHeadline(ti("not_run", [])), "not_run");
    assert.equal(taskHeadline(ti("paused", [])), "paused");
  });

  // A 300 px sidebar, three levels deep, with the state icon and a 12-character task id,
  // leaves about 28 characters of description before it is cut.
  test("the headline fits a 300 px sidebar: at most 28 characters", () => {
    const rows = [
      ti("success", [{ endedAt: T0 + 14_000, signal: "SIGTERM" }], killedThenSet),
      ti("failed", [{ n: 12, endedAt: T0 + 3_700_000, exitCode: 127 }]),
      ti("waiting", [{ endedAt: T0 + 1_000, exitCode: 1 }], [], { retryAt: T0 + 30_000 }),
      ti("running", [{ killRequestedAt: T0 }]),
    ];
    for (const r of rows) assert.ok(taskHeadline(r, T0 + 7_200_000).length <= 28, taskHeadline(r, T0 + 7_200_000));
  });

  test("the details view says who set it to success, and from what", () => {
    const t = ti("success", [{ endedAt: T0 + 14_000, signal: "SIGTERM" }], killedThenSet);
    const instance = { id: "run-1@x", runId: "run-1", bizdate: "2026-11-30", cyctime: "2026-12-01T00:00:00+00:00", state: "finished", tasks: [t] } as const;
    const run = { id: "run-1", kind: "test", workflow: "w", file: "w.flow.ts", state: "success", createdAt: T0, instances: [instance], tasks: [] } as never;
    const model = detailsModel({ runId: "run-1", instanceId: "run-1@x", task: "load" }, run, instance as never);
    assert.equal(model.kind, "found");
    const facts = new Map((model as { facts: { label: string; value: string }[] }).facts.map((f) => [f.label, f.value]));
    assert.match(facts.get("Set success") ?? "", /^by vscode at .+, from killed$/);
  });
});

describe("live work first", () => {
  const inst = (day: number, ...states: TaskInstance["state"][]) =>
    ({ id: `run-1@202611${String(day).padStart(2, "0")}`, runId: "run-1", bizdate: `2026-11-${day}`, cyctime: "", state: "active", tasks: states.map((st) => ti(st, [])) }) as never as import("../../protocol/runner").WorkflowInstance;

  test("a workflow instance shows its most pressing task state", () => {
    assert.equal(instanceState(inst(1, "success", "running", "failed")), "running");
    assert.equal(instanceState(inst(1, "success", "failed", "waiting")), "failed");
    assert.equal(instanceState(inst(1, "success", "success")), "success");
    assert.equal(instanceState(inst(1, "success", "not_run")), "not_run");
  });

  test("a 60-day backfill lists running, then failed, killed, waiting, paused, then the rest in run order", () => {
    const days = Array.from({ length: 60 }, (_, d) => inst(d + 1, "success"));
    days[41] = inst(42, "success", "running");
    days[7] = inst(8, "failed");
    days[50] = inst(51, "running");
    days[3] = inst(4, "paused");
    days[20] = inst(21, "waiting");
    days[59] = inst(60, "not_run");
    const order = liveFirst(days).map((i) => i.bizdate);
    assert.deepEqual(order.slice(0, 5), ["2026-11-42", "2026-11-51", "2026-11-8", "2026-11-21", "2026-11-4"]);
    assert.deepEqual(order.slice(5, 8), ["2026-11-1", "2026-11-2", "2026-11-3"], "the rest keep run order");
    assert.equal(order.length, 60);
  });
});
