/** The status-bar item: the runner's state (stopped / idle / N tasks running / unreachable); a click opens the Instances view. */
import * as vscode from "vscode";
import type { RunnerConnection } from "./connection";
import type { RunStore } from "./store";

export class RunnerStatusItem implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("tideflow.runner", vscode.StatusBarAlignment.Left, 50);
  private readonly disposables: vscode.Disposable[] = [this.item];

  constructor(
    private readonly connection: RunnerConnection,
    private readonly store: RunStore,
  ) {
    this.item.name = "Tideflow Runner";
    this.item.command = "tideflow.instances.focus";
    connection.onDidChangeState(() => this.update(), undefined, this.disposables);
    store.onDidChange(() => this.update(), undefined, this.disposables);
    this.update();
    this.item.show();
  }

  /** What the item says now (tests read it from the DOM; the same text is its accessible name). */
  text(): { text: string; tooltip: string } {
    switch (this.connection.state) {
      case "stopped":
        return { text: "$(circle-slash) Tideflow: stopped", tooltip: "The Tideflow runner is not running; a test or backfill starts it." };
      case "connecting":
        return { text: "$(loading~spin) Tideflow: connecting", tooltip: "Connecting to the Tideflow runner…" };
      case "unreachable":
        return { text: "$(warning) Tideflow: unreachable", tooltip: "The runner's process exists but does not answer; retrying. See the Tideflow output." };
      case "connected": {
        const running = this.store.summaries().reduce((n, s) => n + s.counts.running, 0);
        const pid = this.connection.info?.pid;
        return running > 0
          ? { text: `$(sync~spin) Tideflow: ${running} task${running === 1 ? "" : "s"} running`, tooltip: `Runner pid ${pid}: ${running} task instance(s) running` }
          : { text: "$(check) Tideflow: idle", tooltip: `Runner pid ${pid}: nothing running` };
      }
    }
  }

  private update(): void {
    const { text, tooltip } = this.text();
    this.item.text = text;
    this.item.tooltip = tooltip;
    this.item.accessibilityInformation = { label: text.replace(/\$\([^)]*\)\s*/g, "") };
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
