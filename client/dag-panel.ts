/**
 * The DAG preview: one webview panel per workflow, drawing the server's layout and
 * coloring its nodes by the task states of a chosen workflow instance.
 *
 * The page is a static shell; everything else arrives as `DagHostMessage`s after the
 * script's `ready` (see `protocol/webview.ts`), and the script builds the SVG with DOM
 * APIs, so no task name is ever parsed as HTML. The webview is not kept while hidden
 * (`retainContextWhenHidden: false`): shown again, its script reloads, restores zoom and
 * the chosen instance from its saved state, says `ready`, and gets everything re-posted.
 *
 * Which instance colors the nodes: the newest, unless the person picked another one
 * (`pinned`); a pinned instance that leaves the list falls back to following the newest.
 */
import * as path from "node:path";
import * as vscode from "vscode";
import type { DagLayout } from "../protocol/dag";
import type { TaskState } from "../protocol/runner";
import { isDagWebviewMessage, type DagHostMessage, type DagViewState, type DagWebviewMessage, type InstanceOption } from "../protocol/webview";
import { html, makeNonce, webviewPage } from "./webview-html";

export const DAG_VIEW_TYPE = "tideflow.dag";

/** What the panel reads; the extension adapts its language client and run store to it. */
export interface DagPanelSource {
  /** The server's layout for the workflow file (tideflow/dag with { uri }); null when the file has none. */
  layout(uri: string): Promise<DagLayout | null>;
  /** Recent workflow instances of the workflow, newest first, e.g. { id, label: "run-7 · test · 2026-11-19" }. */
  recentInstances(workflowId: string): { id: string; label: string }[];
  /** The state of each task in an instance, or undefined when the instance is unknown. */
  taskStates(instanceId: string): ReadonlyMap<string, TaskState> | undefined;
  /** Fires with the ids of instances whose task states changed (coalesced by the caller). Also fires (with an empty set) when the list of instances changed. */
  onDidChangeInstances: vscode.Event<ReadonlySet<string>>;
  /** Fires with a file URI string when that file's analysis changed (the panel re-fetches the layout). */
  onDidChangeWorkflowFile: vscode.Event<string>;
  /** Opens the file and reveals the task's definition. */
  revealTask(uri: string, task: string): void;
}

type LayoutResult = { layout: DagLayout | null; error?: string };

export class DagPanel {
  /** Open panels by workflow id. */
  private static readonly panels = new Map<string, DagPanel>();

  /** Opens the preview of a workflow beside the editor, or reveals the one already open. */
  static show(extensionUri: vscode.Uri, source: DagPanelSource, uri: string, workflowId: string): DagPanel {
    const open = DagPanel.panels.get(workflowId);
    if (open) {
      open.setUri(uri);
      open.panel.reveal(undefined, false);
      return open;
    }
    const media = vscode.Uri.joinPath(extensionUri, "media");
    const panel = vscode.window.createWebviewPanel(
      DAG_VIEW_TYPE,
      DagPanel.title(workflowId),
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus: false },
      DagPanel.webviewOptions(media),
    );
    return DagPanel.create(panel, media, source, uri, workflowId);
  }

  /**
   * For a `WebviewPanelSerializer` of `DAG_VIEW_TYPE`: brings back a panel VS Code restored
   * after a reload, from the state its webview saved. Undefined (and the panel disposed)
   * when the state does not name a workflow.
   */
  static revive(panel: vscode.WebviewPanel, extensionUri: vscode.Uri, source: DagPanelSource, state: unknown): DagPanel | undefined {
    const saved = (typeof state === "object" && state !== null ? state : {}) as DagViewState;
    if (typeof saved.uri !== "string" || typeof saved.workflowId !== "string" || DagPanel.panels.has(saved.workflowId)) {
      panel.dispose();
      return undefined;
    }
    const media = vscode.Uri.joinPath(extensionUri, "media");
    panel.webview.options = DagPanel.webviewOptions(media);
    panel.title = DagPanel.title(saved.workflowId);
    return DagPanel.create(panel, media, source, saved.uri, saved.workflowId);
  }

  private static create(panel: vscode.WebviewPanel, media: vscode.Uri, source: DagPanelSource, uri: string, workflowId: string): DagPanel {
    const created = new DagPanel(panel, media, source, uri, workflowId);
    DagPanel.panels.set(workflowId, created);
    return created;
  }

  private static title(workflowId: string): string {
    return `DAG: ${workflowId}`;
  }

  private static webviewOptions(media: vscode.Uri): vscode.WebviewOptions & vscode.WebviewPanelOptions {
    return { enableScripts: true, localResourceRoots: [media], retainContextWhenHidden: false };
  }

  private readonly disposables: vscode.Disposable[] = [];
  private disposed = false;
  /** The webview's script has said `ready` since it last (re)loaded: posting now reaches it. */
  private ready = false;
  /** The last layout fetched, and whether the file changed since (while hidden, nothing is fetched). */
  private layoutResult: LayoutResult | undefined;
  private layoutStale = true;
  /** Bumped per fetch: only the latest fetch's answer is kept. */
  private fetchSeq = 0;
  private fetching = false;
  /** An instance the person chose that is not the newest; null follows the newest. */
  private pinned: string | null = null;
  /** The instance whose states are shown (what the webview's selector shows). */
  private selected: string | null = null;

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly media: vscode.Uri,
    private readonly source: DagPanelSource,
    private uri: string,
    private readonly workflowId: string,
  ) {
    this.disposables.push(
      panel.onDidDispose(() => this.dispose()),
      panel.onDidChangeViewState(() => {
        // Hidden, the webview is gone; it says `ready` again when shown.
        if (!panel.visible) this.ready = false;
      }),
      panel.webview.onDidReceiveMessage((message: unknown) => this.onMessage(message)),
      source.onDidChangeInstances((ids) => this.onInstancesChanged(ids)),
      source.onDidChangeWorkflowFile((changed) => {
        if (sameUri(changed, this.uri)) this.onFileChanged();
      }),
    );
    panel.webview.html = this.page();
    this.fetchLayout();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (DagPanel.panels.get(this.workflowId) === this) DagPanel.panels.delete(this.workflowId);
    this.panel.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
  }

  private setUri(uri: string): void {
    if (sameUri(uri, this.uri)) return;
    this.uri = uri;
    this.onFileChanged();
  }

  private page(): string {
    const webview = this.panel.webview;
    const uri = (name: string) => webview.asWebviewUri(vscode.Uri.joinPath(this.media, name)).toString();
    return webviewPage({
      cspSource: webview.cspSource,
      nonce: makeNonce(),
      title: DagPanel.title(this.workflowId),
      styles: [uri("states.css"), uri("dag.css")],
      scripts: [uri("dag.js")],
      body: html`<header class="toolbar">
<label for="instance">Instance</label>
<select id="instance" disabled><option value="">no instance</option></select>
<span class="spacer"></span>
<button type="button" id="zoom-out" title="Zoom out (−)" aria-label="Zoom out">−</button>
<button type="button" id="zoom-in" title="Zoom in (+)" aria-label="Zoom in">+</button>
<button type="button" id="zoom-fit" title="Fit the whole graph (0)" aria-label="Fit">Fit</button>
</header>
<ul id="legend" class="legend" aria-label="Legend"></ul>
<main id="canvas" class="canvas" data-workflow="${this.workflowId}">
<p id="message" class="message">Loading the DAG of ${this.workflowId}…</p>
</main>`,
    });
  }

  private post(message: DagHostMessage): void {
    if (this.ready && !this.disposed) void this.panel.webview.postMessage(message);
  }

  private onMessage(message: unknown): void {
    if (!isDagWebviewMessage(message)) return;
    const m: DagWebviewMessage = message;
    switch (m.type) {
      case "ready":
        this.ready = true;
        if (m.pinned !== null) this.pinned = m.pinned;
        if (this.layoutResult) this.postLayout();
        if (this.layoutStale) this.fetchLayout();
        this.postInstances();
        break;
      case "select": {
        const newest = this.source.recentInstances(this.workflowId)[0];
        this.pinned = m.instanceId === newest?.id ? null : m.instanceId;
        this.postInstances();
        break;
      }
      case "reveal":
        this.source.revealTask(this.uri, m.task);
        break;
    }
  }

  private onFileChanged(): void {
    this.layoutStale = true;
    if (this.ready) this.fetchLayout();
  }

  private fetchLayout(): void {
    if (this.fetching && !this.layoutStale) return;
    const seq = ++this.fetchSeq;
    const uri = this.uri;
    this.layoutStale = false;
    this.fetching = true;
    void this.source.layout(uri).then(
      (layout) => this.onLayout(seq, { layout }),
      (error: unknown) => this.onLayout(seq, { layout: null, error: error instanceof Error ? error.message : String(error) }),
    );
  }

  private onLayout(seq: number, result: LayoutResult): void {
    if (seq !== this.fetchSeq || this.disposed) return;
    this.fetching = false;
    this.layoutResult = result;
    // A failed request (the server not up yet, say) is tried again when the webview next loads.
    if (result.error !== undefined) this.layoutStale = true;
    this.postLayout();
  }

  private postLayout(): void {
    const result = this.layoutResult;
    if (!result) return;
    this.post({
      type: "layout",
      uri: this.uri,
      workflowId: this.workflowId,
      fileName: fileName(this.uri),
      layout: result.layout,
      ...(result.error !== undefined ? { error: result.error } : {}),
    });
  }

  private onInstancesChanged(ids: ReadonlySet<string>): void {
    if (ids.size === 0) this.postInstances();
    else if (this.selected !== null && ids.has(this.selected)) this.postStates();
  }

  /** Re-reads the list, re-derives the selection, posts the list and the selection's states. */
  private postInstances(): void {
    const instances: InstanceOption[] = this.source.recentInstances(this.workflowId).map((i) => ({ id: i.id, label: i.label }));
    if (this.pinned !== null && !instances.some((i) => i.id === this.pinned)) this.pinned = null;
    const selected = this.pinned ?? instances[0]?.id ?? null;
    this.selected = selected;
    this.post({ type: "instances", instances, selected });
    this.postStates();
  }

  private postStates(): void {
    const id = this.selected;
    const states = id === null ? undefined : this.source.taskStates(id);
    this.post({ type: "states", instanceId: id, states: states ? [...states] : [] });
  }
}

function sameUri(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return vscode.Uri.parse(a).toString() === vscode.Uri.parse(b).toString();
  } catch {
    return false;
  }
}

function fileName(uri: string): string {
  try {
    return path.posix.basename(vscode.Uri.parse(uri).path);
  } catch {
    return uri;
  }
}
