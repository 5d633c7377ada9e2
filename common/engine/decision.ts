/**
 * One decision under way (`Tx`): the records it has emitted, each applied at once so
 * that its later steps see their effect, the effects for the executor, and what it has
 * disturbed for the scheduler to look at (`settle`, scheduling.ts). Every decision, from
 * run creation to a batch operation, is one Tx and returns one `Decision`.
 */
import type { Effect, EngineRecord, HistoryCause, InstanceState, TaskInstance, TaskState } from "../../protocol/runner";
import { applyRecord } from "./apply";
import type { EngineState, InstanceIndex, RunIndex } from "./state";

export class Tx {
  readonly records: EngineRecord[] = [];
  readonly effects: Effect[] = [];
  /** Instances whose tasks changed: check what can start, and whether they finished. */
  readonly dirty = new Set<InstanceIndex>();
  /** Runs that may have a free slot for a queued instance. */
  readonly slots = new Set<RunIndex>();
  /** Runs whose state must be recomputed. */
  readonly touched = new Set<RunIndex>();
  constructor(
    readonly state: EngineState,
    readonly now: number,
  ) {}

  emit(record: EngineRecord): void {
    applyRecord(this.state, record);
    this.records.push(record);
  }

  transition(idx: InstanceIndex, ti: TaskInstance, to: TaskState, cause: HistoryCause, by?: string, attempt?: number, after?: string[]): void {
    this.emit({
      type: "task.state",
      at: this.now,
      ...base(idx, ti.task),
      from: ti.state,
      to,
      cause,
      ...(by !== undefined ? { by } : {}),
      ...(attempt !== undefined ? { attempt } : {}),
      ...(after !== undefined ? { after } : {}),
    });
    this.touched.add(idx.run);
  }

  setInstanceState(idx: InstanceIndex, to: InstanceState): void {
    this.emit({ type: "instance.state", at: this.now, runId: idx.run.run.id, instanceId: idx.inst.id, from: idx.inst.state, to });
  }
}

/** The fields that name a task instance in records and effects. */
export function base(idx: InstanceIndex, task: string) {
  return { runId: idx.run.run.id, instanceId: idx.inst.id, task };
}
