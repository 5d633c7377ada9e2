/**
 * Refusals: what a refused decision returns (nothing changed), and the pieces its
 * sentences are made of. The wording is an API answer (the runner passes code, reason and
 * states through as they are), so changing a sentence here changes what people read.
 */
import type { Refusal, RefusalCode, TaskState } from "../../protocol/runner";

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
