/** The one typed reader of the extension's `tideflow.*` settings (the server pulls its own per resource). */
import * as vscode from "vscode";

export interface Config {
  /** Keep a runner this window started running after the window closes. */
  keepAlive: boolean;
  /** Delay before an Instances tree refresh, so that a burst of runner events makes one update (ms). */
  treeCoalesceMs: number;
  /** Runs with more task instances than this are shown by their counts only (no instance list). */
  maxLoadedTaskInstances: number;
}

export function readConfig(): Config {
  const c = vscode.workspace.getConfiguration("tideflow");
  return {
    keepAlive: c.get<boolean>("runner.keepAlive", false),
    treeCoalesceMs: c.get<number>("instances.coalesceMs", 50),
    maxLoadedTaskInstances: c.get<number>("instances.maxLoaded", 50_000),
  };
}
