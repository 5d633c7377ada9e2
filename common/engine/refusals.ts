/**
 * Refusals: what a refused decision returns (nothing changed), and the pieces its
 * sentences are made of: how a task instance is named for a person, and the lookup of a
 * `TaskRef` that is refused when it names nothing. The wording is an API answer (the
 * runner passes code, reason and states through as they are), so changing a sentence
 * here changes what people read.
 */
import type { Refusal, RefusalCode, TaskInstance, TaskRef, TaskState } from "../../protocol/runner";
import type { EngineState, InstanceIndex } from "./state";

export function refuse(code: RefusalCode, reason: string, extra: { state?: TaskState; allowed?: readonly TaskState[] } = {}): Refusal {
  return {
    ok: false,
    code,
    reason,
    ...(extra.state !== undefined ? { state: extra.state } : {}),
    ...(extra.allowed !== undefined ? { allowed: [...extra.allowed] } : {}),
  };
}

/** "not_run, success, failed or killed" */
export function orList(states: readonly string[]): string {
  return states.length === 1 ? states[0] : `${states.slice(0, -1).join(", ")} or ${states[states.length - 1]}`;
}

/** "2026-11-19", or "2026-11-19 (cyctime …)" when the bizdate has several instances (hourly). */
export function describeInstance(idx: InstanceIndex): string {
  const several = (idx.run.perBizdate.get(idx.inst.bizdate) ?? 0) > 1;
  return several ? `${idx.inst.bizdate} (cyctime ${idx.inst.cyctime})` : idx.inst.bizdate;
}

/** "`load` on 2026-11-19" */
export function describe(idx: InstanceIndex, task: string): string {
  return `\`${task}\` on ${describeInstance(idx)}`;
}

export function resolve(s: EngineState, ref: TaskRef): { ok: true; idx: InstanceIndex; ti: TaskInstance } | Refusal {
  const idx = s.instances.get(ref.instanceId);
  if (!idx) return refuse("no-instance", `no workflow instance \`${ref.instanceId}\``);
  const ti = idx.tasks.get(ref.task);
  if (!ti) {
    return refuse("no-task", `run ${idx.run.run.id} did not select task \`${ref.task}\`; it has ${idx.run.run.tasks.map((t) => `\`${t.id}\``).join(", ")}`);
  }
  return { ok: true, idx, ti };
}
