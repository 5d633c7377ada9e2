/**
 * Attempt logs as read-only documents (`tideflow-log:` URIs), highlighted by the
 * `tideflow-log` grammar. A document of an attempt that still runs follows it: it
 * subscribes to the attempt's lines and appends them as they are written, placing each
 * batch by its byte offset so that lines read twice (a read and a live event overlapping)
 * appear once.
 */
import * as vscode from "vscode";
import type { ApiEvent } from "../protocol/api";
import { TERMINAL_TASK_STATES } from "../protocol/runner";
import { NotRunningError, type RunnerConnection } from "./connection";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { attemptLogPath, logsDir } from "../common/log-files";

export { lastErrorLine } from "../common/log-lines";

export const LOG_SCHEME = "tideflow-log";

export interface LogTarget {
  runId: string;
  instanceId: string;
  task: string;
  attempt: number;
}

interface OpenLog {
  target: LogTarget;
  /** The file's bytes we have, from offset 0. */
  text: Buffer;
  subscription?: number;
  loading?: Promise<void>;
  error?: string;
}

export function logUri(t: LogTarget, bizdate: string): vscode.Uri {
  const q = new URLSearchParams({ run: t.runId, instance: t.instanceId, task: t.task, attempt: String(t.attempt) });
  return vscode.Uri.from({ scheme: LOG_SCHEME, path: `/${t.runId}/${bizdate}/${t.task}.${t.attempt}.log`, query: q.toString() });
}

function targetOf(uri: vscode.Uri): LogTarget {
  const q = new URLSearchParams(uri.query);
  return { runId: q.get("run") ?? "", instanceId: q.get("instance") ?? "", task: q.get("task") ?? "", attempt: Number(q.get("attempt")) };
}

export class LogDocuments implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.emitter.event;
  private readonly open = new Map<string, OpenLog>();
  private readonly disposables: vscode.Disposable[] = [this.emitter];
  private readonly throttled = new Map<string, NodeJS.Timeout>();
  /** Line count of each open log when last seen, to tell whether a cursor was at its end. */
  private readonly lineCounts = new Map<string, number>();

  constructor(private readonly connection: RunnerConnection) {
    // Follow the tail as `tail -f` does: an editor whose cursor is on the last line stays
    // at the end as lines arrive; moving the cursor up stops following, back down resumes.
    vscode.workspace.onDidChangeTextDocument((e) => {
      const doc = e.document;
      if (doc.uri.scheme !== LOG_SCHEME) return;
      const key = doc.uri.toString();
      const before = this.lineCounts.get(key) ?? 0;
      this.lineCounts.set(key, doc.lineCount);
      for (const editor of vscode.window.visibleTextEditors) {
        if (editor.document === doc && editor.selection.isEmpty && editor.selection.active.line >= before - 1) toEnd(editor);
      }
    }, undefined, this.disposables);
    connection.onEvent((e) => this.onEvent(e), undefined, this.disposables);
    connection.onDidConnect(() => {
      // Subscriptions die with the socket: read again from where we are, and follow again.
      for (const [key, log] of this.open) {
        log.subscription = undefined;
        void this.load(key, log);
      }
    }, undefined, this.disposables);
    vscode.workspace.onDidCloseTextDocument((doc) => {
      if (doc.uri.scheme !== LOG_SCHEME) return;
      const key = doc.uri.toString();
      const log = this.open.get(key);
      this.open.delete(key);
      this.lineCounts.delete(key);
      if (log?.subscription !== undefined) void connection.request("unsubscribe", { subscription: log.subscription }).catch(() => undefined);
    }, undefined, this.disposables);
  }

  async show(target: LogTarget, bizdate: string): Promise<vscode.TextEditor> {
    const uri = logUri(target, bizdate);
    const doc = await vscode.workspace.openTextDocument(uri);
    if (doc.languageId !== "tideflow-log") await vscode.languages.setTextDocumentLanguage(doc, "tideflow-log");
    const editor = await vscode.window.showTextDocument(doc, { preview: false });
    this.lineCounts.set(uri.toString(), doc.lineCount);
    toEnd(editor);
    return editor;
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const key = uri.toString();
    let log = this.open.get(key);
    if (!log) {
      log = { target: targetOf(uri), text: Buffer.alloc(0) };
      this.open.set(key, log);
      await this.load(key, log);
    } else await log.loading;
    if (log.error) return `Tideflow: ${log.error}\n`;
    return log.text.toString("utf8");
  }

  private load(key: string, log: OpenLog): Promise<void> {
    log.loading = (async () => {
      const t = log.target;
      try {
        const first = await this.connection.request("logs.read", { run: t.runId, date: t.instanceId, task: t.task, attempt: t.attempt, offset: log.text.length });
        this.place(log, first.text, first.size);
        log.error = undefined;
        const live = !TERMINAL_TASK_STATES.includes(first.state) && log.subscription === undefined;
        if (live && this.open.has(key)) {
          const { subscription } = await this.connection.request("subscribe", { logs: { instanceId: t.instanceId, task: t.task, attempt: t.attempt } });
          log.subscription = subscription;
          // Lines written between the read and the subscription: read once more from where we are.
          const again = await this.connection.request("logs.read", { run: t.runId, date: t.instanceId, task: t.task, attempt: t.attempt, offset: log.text.length });
          this.place(log, again.text, again.size);
        }
      } catch (e) {
        // No runner: logs are files. Read it from .tideflow/logs; the next connection
        // reads on from there and follows the attempt if it still runs.
        const fromDisk = e instanceof NotRunningError ? await this.readFromDisk(t) : undefined;
        if (fromDisk !== undefined) {
          this.place(log, fromDisk.toString("utf8"), fromDisk.length);
          log.error = undefined;
        } else log.error = e instanceof Error ? e.message : String(e);
      }
      this.changed(key);
    })();
    return log.loading;
  }

  /** The attempt's log file as the runner writes it (runner/logs.ts), or undefined when it cannot be read. */
  private async readFromDisk(t: LogTarget): Promise<Buffer | undefined> {
    const root = this.connection.root;
    if (!root || /[/\\]|^\.\.?$/.test(t.instanceId) || /[/\\]/.test(t.task)) return undefined;
    try {
      return await readFile(attemptLogPath(logsDir(join(root, ".tideflow")), t.instanceId, t.task, t.attempt));
    } catch {
      return undefined;
    }
  }

  /** Appends the part of `text` (which ends at byte `end` of the file) that is not there yet. */
  private place(log: OpenLog, text: string, end: number): void {
    const have = log.text.length;
    if (end <= have) return;
    const buf = Buffer.from(text, "utf8");
    const start = end - buf.length;
    if (start > have) return; // a gap: the next read fills it
    log.text = Buffer.concat([log.text, buf.subarray(have - start)]);
  }

  private onEvent(e: ApiEvent): void {
    if (e.event !== "log") return;
    for (const [key, log] of this.open) {
      if (log.subscription !== e.subscription) continue;
      const before = log.text.length;
      this.place(log, e.text, e.end);
      if (log.text.length !== before) this.changed(key);
      else if (e.end > before) void this.load(key, log); // a gap: read the missing bytes
    }
  }

  /** At most ~10 document updates a second per log. */
  private changed(key: string): void {
    if (this.throttled.has(key)) return;
    this.throttled.set(
      key,
      setTimeout(() => {
        this.throttled.delete(key);
        this.emitter.fire(vscode.Uri.parse(key));
      }, 100),
    );
  }

  dispose(): void {
    for (const t of this.throttled.values()) clearTimeout(t);
    for (const d of this.disposables) d.dispose();
  }
}

/** Puts the cursor at the end of the document and scrolls there. */
function toEnd(editor: vscode.TextEditor): void {
  const end = editor.document.lineAt(editor.document.lineCount - 1).range.end;
  editor.selection = new vscode.Selection(end, end);
  editor.revealRange(new vscode.Range(end, end));
}
