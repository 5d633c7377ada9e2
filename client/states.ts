/** How each task and run state looks in the editor: one table, used by trees, lenses and the status bar. */
import * as vscode from "vscode";
import type { RunState, TaskState } from "../protocol/runner";

const TASK_ICON: Record<TaskState, [string, string | undefined]> = {
  not_run: ["circle-large-outline", "disabledForeground"],
  waiting: ["clock", "charts.yellow"],
  running: ["sync~spin", "charts.blue"],
  success: ["pass", "testing.iconPassed"],
  failed: ["error", "testing.iconFailed"],
  killed: ["circle-slash", "charts.orange"],
  paused: ["debug-pause", "disabledForeground"],
};

export function taskStateIcon(state: TaskState): vscode.ThemeIcon {
  const [id, color] = TASK_ICON[state];
  return new vscode.ThemeIcon(id, color ? new vscode.ThemeColor(color) : undefined);
}

export function runStateIcon(state: RunState): vscode.ThemeIcon {
  return taskStateIcon(state);
}

/** Codicon ids for text (`$(pass) success`): lenses, the status bar. */
export function taskStateCodicon(state: TaskState): string {
  return TASK_ICON[state][0];
}
