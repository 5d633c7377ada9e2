/**
 * Planning: what run a spec asks of a workflow model (`planRun`: task selection with
 * `downstream`, dependency order, the run's limits, the instances' bizdates and cyctimes
 * from dates.ts), checked and refused with a reason a person can act on, and the
 * decision that creates it (`createRun`). `planRun` creates nothing, so the runner's
 * `runs.plan` shows exactly what `createRun` would make.
 */
import type { WorkflowModel } from "../../protocol/model";
import type { CreateRunResult, Refusal, RunCreatedRecord, RunOrder, RunSpec, RunTask } from "../../protocol/runner";
import { previousDay, zonedDate } from "../zone";
import { instanceTimes, testInstanceTime, type InstanceTime } from "./dates";
import { Tx } from "./decision";
import { refuse } from "./refusals";
import { settle } from "./scheduling";
import type { EngineState } from "./state";
/**
 * Max running tasks per workflow instance when the workflow sets no `concurrency`.
 * Unlimited would start every independent task of a wide DAG at once on a laptop
 * (times `parallelism`); Airflow's per-DAG default is 16, a local runner wants less.
 */
export const DEFAULT_CONCURRENCY = 8;

/** What `createRun` would create, before it has an id: the run's frozen tasks and its instances' dates, in start order. */
export interface RunDraft {
  kind: RunSpec["kind"];
  file: string;
  workflow: string;
  /** The spec as the journal stores it (through JSON). */
  spec: RunSpec;
  parallelism: number;
  order: RunOrder;
  concurrency: number;
  /** Selected tasks in dependency order. */
  tasks: RunTask[];
  instances: InstanceTime[];
}

/**
 * Checks the spec against the workflow and works out the run it asks for, creating
 * nothing: the one place task selection and instance dates are decided, for `createRun`
 * and for a plan shown before it (the runner's `runs.plan`). Pure. Refused with
 * `invalid-spec` and a reason a person can act on.
 */
export function planRun(spec: RunSpec, workflow: WorkflowModel, now: number): { ok: true; draft: RunDraft } | Refusal {
  try {
    return { ok: true, draft: draftRun(spec, workflow, now) };
  } catch (e) {
    return refuse("invalid-spec", e instanceof Error ? e.message : String(e));
  }
}

/** `Engine.createRun`: the `run.created` record of the planned run (id `run-<n+1>` unless given), then what starts. */
export function createRun(s: EngineState, spec: RunSpec, workflow: WorkflowModel, now: number, by?: string, id?: string): CreateRunResult {
  const planned = planRun(spec, workflow, now);
  if (!planned.ok) return planned;
  const runId = id ?? `run-${s.runSeq + 1}`;
  if (s.runs.has(runId)) return refuse("invalid-spec", `a run with id \`${runId}\` exists already`);
  const { instances, ...draft } = planned.draft;
  const def: RunCreatedRecord["run"] = {
    id: runId,
    ...draft,
    ...(by !== undefined ? { by } : {}),
    instances: instances.map((t) => ({ id: `${runId}@${t.cyctime.replace(/[-:]/g, "")}`, bizdate: t.bizdate, cyctime: t.cyctime })),
  };
  const tx = new Tx(s, now);
  tx.emit({ type: "run.created", at: now, run: def });
  const run = s.runIndex(def.id);
  tx.slots.add(run);
  tx.touched.add(run);
  return { ok: true, runId: def.id, ...settle(tx) };
}

function draftRun(spec: RunSpec, workflow: WorkflowModel, now: number): RunDraft {
  if (spec.kind !== "test" && spec.kind !== "backfill") {
    throw new Error(`Expected \`kind\` to be test or backfill, got \`${String(spec.kind)}\``);
  }
  if (spec.workflow !== workflow.id) {
    throw new Error(`the run asks for workflow \`${spec.workflow}\`, but ${spec.file} defines \`${workflow.id}\``);
  }
  const parallelism = spec.parallelism ?? 1;
  if (!Number.isInteger(parallelism) || parallelism < 1) {
    throw new Error(`Expected \`parallelism\` to be an integer from 1 and up, got \`${parallelism}\``);
  }
  const order = spec.order ?? "asc";
  if (order !== "asc" && order !== "desc") throw new Error(`Expected \`order\` to be asc or desc, got \`${String(order)}\``);
  const concurrency = workflow.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new Error(`Expected workflow \`${workflow.id}\`'s \`concurrency\` to be an integer from 1 and up, got \`${concurrency}\``);
  }

  const byId = new Map<string, WorkflowModel["tasks"][number]>();
  for (const t of workflow.tasks) {
    if (byId.has(t.id)) throw new Error(`workflow \`${workflow.id}\` has two tasks with id \`${t.id}\`; fix the duplicate-task error first`);
    byId.set(t.id, t);
  }
  // Same-workflow upstream edges between tasks that exist (unknown ones are the analyzer's errors).
  const upstreamOf = (t: WorkflowModel["tasks"][number]) =>
    t.upstream.filter((u) => (u.workflow === undefined || u.workflow === workflow.id) && byId.has(u.task)).map((u) => u.task);

  let selected: Set<string>;
  if (spec.tasks === undefined) selected = new Set(byId.keys());
  else {
    const unknown = spec.tasks.filter((t) => !byId.has(t));
    if (unknown.length > 0) {
      throw new Error(
        `workflow \`${workflow.id}\` has no task${unknown.length > 1 ? "s" : ""} ${unknown.map((t) => `\`${t}\``).join(", ")}; ` +
          `it has ${[...byId.keys()].map((t) => `\`${t}\``).join(", ") || "no tasks"}`,
      );
    }
    selected = new Set(spec.tasks);
    if (spec.downstream) {
      const downstream = new Map<string, string[]>();
      for (const t of workflow.tasks) {
        for (const u of upstreamOf(t)) downstream.set(u, [...(downstream.get(u) ?? []), t.id]);
      }
      const stack = [...selected];
      while (stack.length > 0) {
        for (const d of downstream.get(stack.pop()!) ?? []) {
          if (!selected.has(d)) {
            selected.add(d);
            stack.push(d);
          }
        }
      }
    }
  }
  if (selected.size === 0) throw new Error(`the run selects no task; workflow \`${workflow.id}\` has ${byId.size} task${byId.size === 1 ? "" : "s"}`);

  // Dependency order (Kahn), stable in workflow order; leftovers are a cycle.
  const tasks: RunTask[] = [];
  const upstream = new Map<string, string[]>();
  for (const t of workflow.tasks) if (selected.has(t.id)) upstream.set(t.id, [...new Set(upstreamOf(t).filter((u) => selected.has(u)))]);
  const placed = new Set<string>();
  let progress = true;
  while (progress && placed.size < selected.size) {
    progress = false;
    for (const t of workflow.tasks) {
      if (!selected.has(t.id) || placed.has(t.id)) continue;
      const ups = upstream.get(t.id)!;
      if (!ups.every((u) => placed.has(u))) continue;
      placed.add(t.id);
      progress = true;
      tasks.push({
        id: t.id,
        kind: t.kind,
        ...(t.command !== undefined ? { command: t.command } : {}),
        upstream: ups,
        retries: t.retries ?? 0,
        retryDelayMs: t.retryDelayMs ?? 0,
        ...(t.timeoutMs !== undefined ? { timeoutMs: t.timeoutMs } : {}),
        params: { ...(workflow.params ?? {}), ...(t.params ?? {}) },
      });
    }
  }
  if (placed.size < selected.size) {
    const stuck = [...selected].filter((t) => !placed.has(t));
    throw new Error(`tasks ${stuck.map((t) => `\`${t}\``).join(", ")} are in or behind a dependency cycle; fix the cycle error first`);
  }

  let times: InstanceTime[];
  if (spec.kind === "test") {
    if (spec.from !== undefined || spec.to !== undefined) throw new Error("a test run takes `bizdate`, not `from`/`to`");
    const bizdate = spec.bizdate ?? previousDay(zonedDate(now, workflow.timezone));
    times = [testInstanceTime(workflow.schedule, workflow.timezone, bizdate)];
  } else {
    if (spec.bizdate !== undefined) throw new Error("a backfill takes `from` and `to`, not `bizdate`");
    if (spec.from === undefined || spec.to === undefined) {
      throw new Error(`a backfill needs both \`from\` and \`to\`, got ${spec.from === undefined ? "no from" : `from ${spec.from}`} and ${spec.to === undefined ? "no to" : `to ${spec.to}`}`);
    }
    times = instanceTimes(workflow.schedule, workflow.timezone, spec.from, spec.to);
    if (times.length === 0) {
      throw new Error(`schedule \`${workflow.schedule}\` fires for no bizdate from ${spec.from} to ${spec.to}`);
    }
  }
  if (order === "desc") times.reverse();
  return {
    kind: spec.kind,
    file: spec.file,
    workflow: workflow.id,
    // Through JSON, as the journal will store it: no `undefined` members to tell live and replayed state apart.
    spec: JSON.parse(JSON.stringify(spec)) as RunSpec,
    parallelism,
    order,
    concurrency,
    tasks,
    instances: times,
  };
}
