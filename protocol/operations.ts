/**
 * The task operations of SPEC §3, in one table that the engine (preconditions), the
 * runner (API → engine method), the API's parameter check, the CLI (commands and their
 * batch help) and the editor (commands, menus) all read. A new operation is a row here
 * and an engine method.
 */
import type { TaskOperation } from "./api";
import type { TaskState } from "./runner";

export interface OperationSpec {
  /** The name on the wire and on the command line. */
  op: TaskOperation;
  /** The engine's method for one task instance. */
  method: "kill" | "rerun" | "setSuccess" | "pause" | "resume";
  /** For sentences: "set success needs state failed or killed". */
  label: string;
  /** The states it is allowed from. */
  from: readonly TaskState[];
  /** What its batch form (no task named) does, for `--help`. */
  batch: string;
}

export const OPERATIONS: readonly OperationSpec[] = [
  { op: "kill", method: "kill", label: "kill", from: ["waiting", "running"], batch: "kill the run's waiting and running task instances; instances not started yet are cancelled" },
  { op: "rerun", method: "rerun", label: "rerun", from: ["not_run", "success", "failed", "killed"], batch: "rerun the run's failed and killed task instances, and queue cancelled instances again" },
  { op: "set-success", method: "setSuccess", label: "set success", from: ["failed", "killed"], batch: "set every failed or killed task instance success" },
  { op: "pause", method: "pause", label: "pause", from: ["not_run", "waiting"], batch: "pause every not-yet-started task instance" },
  { op: "resume", method: "resume", label: "resume", from: ["paused"], batch: "resume every paused task instance" },
];

/** The table by operation name. */
export const OPERATION = Object.fromEntries(OPERATIONS.map((o) => [o.op, o])) as Record<TaskOperation, OperationSpec>;

/** The states each engine method is allowed from. */
export const OPERATION_FROM = Object.fromEntries(OPERATIONS.map((o) => [o.method, o.from])) as Record<OperationSpec["method"], readonly TaskState[]>;
