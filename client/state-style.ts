/**
 * How a task state looks in the webviews: the word a person reads and the CSS class that
 * colors it. The colors themselves are theme variables in `media/states.css`, one rule per
 * class; a unit test checks every state has one.
 *
 * Pure and import-free (types aside): the webview scripts bundle it too.
 */
import type { TaskState } from "../protocol/runner";

const WORDS: Record<TaskState, string> = {
  not_run: "not run",
  waiting: "waiting",
  running: "running",
  success: "success",
  failed: "failed",
  killed: "killed",
  paused: "paused",
};

/** The word for a state; undefined (no instance, or a task outside its selection) is "no state". */
export function stateWord(state: TaskState | undefined): string {
  return state === undefined ? "no state" : WORDS[state];
}

/** `state-success`, ...; `state-none` for no state. */
export function stateClass(state: TaskState | undefined): string {
  return state === undefined ? "state-none" : `state-${state}`;
}

/** The `data-state` attribute value: the state name itself, or `none`. */
export function stateAttribute(state: TaskState | undefined): string {
  return state ?? "none";
}
