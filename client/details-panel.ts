/**
 * The details of one task instance in a webview: run, dates, state, attempts with their
 * logs, and the full state history. One panel per task instance; showing it again
 * reveals the open one.
 *
 * The page is rendered here, every value through `escapeHtml` (`details-model.ts`); the
 * small script `media/details.js` only turns "Show log" clicks into messages and keeps
 * the scroll position when the page is rendered anew.
 */
import * as vscode from "vscode";
import type { Run, WorkflowInstance } from "../protocol/runner";
import { isDetailsWebviewMessage } from "../protocol/webview";
import { detailsModel, renderDetailsBody, type DetailsTarget } from "./details-model";
import { makeNonce, webviewPage } from "./webview-html";

export const DETAILS_VIEW_TYPE = "tideflow.details";

/** What the panel reads; the extension adapts its run store to it. */
export interface DetailsSource {
  run(runId: string): Run | undefined;
  instance(instanceId: string): WorkflowInstance | undefined;
  /** Fires with the ids of instances whose task states changed; an empty set when the list of instances changed. */
  onDidChangeInstances: vscode.Event<ReadonlySet<string>>;
  showLog(target: { runId: string; instanceId: string; task: string; attempt?: number }): void;
}

export class DetailsPanel {
  /** Open panels by task instance (`instanceId` + NUL + `task`). */
  private static readonly panels = new Map<string, DetailsPanel>();

  static show(
    extensionUri: vscode.Uri,
    source: DetailsSource,
    target: { runId: string; instanceId: string; task: string },
  ): DetailsPanel {
    const key = `${target.instanceId}\u0000${target.task}`;
    const open = DetailsPanel.panels.get(key);
    if (open) {
      open.panel.reveal(undefined, false);
      return open;
    }
    const media = vscode.Uri.joinPath(extensionUri, "media");
    const panel = vscode.window.createWebviewPanel(
      DETAILS_VIEW_TYPE,
      target.task,
      { viewColumn: vscode.ViewColumn.Active, preserveFocus: false },
      { enableScripts: true, localResourceRoots: [media], retainContextWhenHidden: false },
    );
    const created = new DetailsPanel(panel, media, source, { ...target }, key);
    DetailsPanel.panels.set(key, created);
    return created;
  }

  private readonly disposables: vscode.Disposable[] = [];
  private disposed = false;
  /** The body last rendered: a change event that changes nothing shown does not reload the page. */
  private lastBody: string | undefined;

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly media: vscode.Uri,
    private readonly source: DetailsSource,
    private readonly target: DetailsTarget,
    private readonly key: string,
  ) {
    this.disposables.push(
      panel.onDidDispose(() => this.dispose()),
      panel.webview.onDidReceiveMessage((message: unknown) => this.onMessage(message)),
      source.onDidChangeInstances((ids) => {
        // An empty set: the list of instances changed (ours may be gone).
        if (ids.size === 0 || ids.has(target.instanceId)) this.render();
      }),
    );
    this.render();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (DetailsPanel.panels.get(this.key) === this) DetailsPanel.panels.delete(this.key);
    this.panel.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
  }

  private render(): void {
    if (this.disposed) return;
    const model = detailsModel(this.target, this.source.run(this.target.runId), this.source.instance(this.target.instanceId));
    const body = renderDetailsBody(model);
    this.panel.title = model.title;
    if (body.value === this.lastBody) return;
    this.lastBody = body.value;
    const webview = this.panel.webview;
    const uri = (name: string) => webview.asWebviewUri(vscode.Uri.joinPath(this.media, name)).toString();
    webview.html = webviewPage({
      cspSource: webview.cspSource,
      nonce: makeNonce(),
      title: model.title,
      styles: [uri("states.css"), uri("details.css")],
      scripts: [uri("details.js")],
      body,
    });
  }

  private onMessage(message: unknown): void {
    if (!isDetailsWebviewMessage(message)) return;
    switch (message.type) {
      case "showLog":
        this.source.showLog({ ...this.target, attempt: message.attempt });
        break;
    }
  }
}
