/**
 * LSP wiring: keeps the workspace index current from the editor and the disk, publishes
 * diagnostics, and answers requests. Every handler only translates; the analysis lives
 * in analyzer/ and features/.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  CodeActionKind,
  DidChangeConfigurationNotification,
  DidChangeWatchedFilesNotification,
  FileChangeType,
  TextDocumentSyncKind,
  TextDocuments,
  type CodeAction,
  type Connection,
  type Diagnostic,
  type InitializeResult,
  type Position,
  type TextDocumentContentChangeEvent,
} from "vscode-languageserver/node";
import { TextDocument } from "vscode-languageserver-textdocument";
import type { DagLayout } from "../protocol/dag";
import {
  DEFAULT_SETTINGS,
  DagRequest,
  DagSvgRequest,
  WorkflowsRequest,
  type DagParams,
  type ServerSettings,
  type WorkflowSummary,
} from "../protocol/lsp";
import { SEVERITY, type FileAnalysis, type TideflowDiagnostic } from "../protocol/model";
import { analyzeFile } from "./analyzer/analyze";
import { StatementCache } from "./analyzer/parse";
import { WorkspaceIndex } from "./analyzer/workspace";
import { layoutDag } from "./dag/layout";
import { renderDagSvg } from "./dag/svg";
import { completeUpstream } from "./features/completion";
import { hover } from "./features/hover";
import { definition, prepareRename, references, rename } from "./features/navigation";
import { codeLenses, documentSymbols, foldingRanges } from "./features/outline";
import { AnalyzerProcess } from "../common/analyze-client";
import { findWorkflowFiles, isWorkflowFile } from "./workspace-scan";

/** Files indexed per turn of the event loop, so requests still get answers. */
const INDEX_BATCH = 20;
/** dist/analyze.js, next to dist/server.js. */
const ANALYZER_PATH = join(__dirname, "analyze.js");
const LAYOUT_CACHE_SIZE = 32;

export function startServer(connection: Connection): void {
  const server = new TideflowServer(connection);
  server.listen();
}

class TideflowServer {
  private readonly index = new WorkspaceIndex();
  private readonly documents = new TextDocuments({
    create: TextDocument.create,
    // vscode-languageserver-textdocument 1.0.16 corrupts its line table on a change
    // whose range lies past the end of the document; later valid edits then land in
    // the wrong place. Clamping every range to the document first avoids it.
    // Each change is clamped against the text the changes before it left.
    update: (doc, changes, version) => changes.reduce((d, c) => TextDocument.update(d, [clampChange(d, c)], version), doc),
  });
  /** Per open document: parsed statements of its previous version. */
  private readonly caches = new Map<string, StatementCache>();
  /** Per open document: the pending debounced analysis. */
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Per open document: the version the index holds. */
  private readonly analyzedVersion = new Map<string, number>();
  /** What each URI was last sent, so that unchanged files are not re-published. */
  private readonly published = new Map<string, string>();
  /** Settings per resource, dropped on every configuration change. */
  private readonly settings = new Map<string, { pending: Promise<ServerSettings>; value?: ServerSettings }>();
  private readonly layouts = new Map<string, DagLayout>();
  private roots: string[] = [];
  private canPullConfiguration = false;
  private canWatchFiles = false;
  private indexing: Promise<void> = Promise.resolve();

  constructor(private readonly connection: Connection) {}

  listen(): void {
    const c = this.connection;
    c.onInitialize((params): InitializeResult => {
      const caps = params.capabilities;
      this.canPullConfiguration = !!caps.workspace?.configuration;
      this.canWatchFiles = !!caps.workspace?.didChangeWatchedFiles?.dynamicRegistration;
      const folders = params.workspaceFolders?.map((f) => f.uri) ?? (params.rootUri ? [params.rootUri] : []);
      this.roots = folders.filter((u) => u.startsWith("file:")).map((u) => fileURLToPath(u));
      return {
        capabilities: {
          textDocumentSync: TextDocumentSyncKind.Incremental,
          hoverProvider: true,
          completionProvider: { triggerCharacters: ['"', "'", "`", "."] },
          definitionProvider: true,
          referencesProvider: true,
          renameProvider: { prepareProvider: true },
          documentSymbolProvider: true,
          foldingRangeProvider: true,
          codeLensProvider: { resolveProvider: false },
          codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix] },
          workspace: { workspaceFolders: { supported: true } },
        },
        serverInfo: { name: "tideflow", version: "0.1.0" },
      };
    });
    c.onInitialized(() => {
      if (this.canPullConfiguration) {
        void c.client.register(DidChangeConfigurationNotification.type, { section: "tideflow" }).catch(this.logError);
      }
      if (this.canWatchFiles) {
        void c.client
          .register(DidChangeWatchedFilesNotification.type, { watchers: [{ globPattern: "**/*.flow.{ts,js}" }] })
          .catch(this.logError);
      }
      this.indexing = this.indexWorkspace().catch(this.logError);
    });
    c.onDidChangeConfiguration(() => {
      this.settings.clear();
      for (const doc of this.documents.all()) this.schedule(doc);
    });
    c.onDidChangeWatchedFiles((params) => {
      void this.guardAsync("watched files", async () => {
        for (const change of params.changes) {
          const uri = canonical(change.uri);
          if (!isWorkflowFile(uri) || this.documents.get(uri)) continue; // open documents win over the disk
          if (change.type === FileChangeType.Deleted) this.index.delete(uri);
          else await this.indexFromDisk(uri);
        }
        this.publishAll();
      });
    });

    this.documents.onDidOpen((e) => this.guard("open", () => this.analyzeNow(e.document)));
    this.documents.onDidChangeContent((e) => this.guard("change", () => this.schedule(e.document)));
    this.documents.onDidClose((e) => {
      void this.guardAsync("close", async () => {
        const uri = canonical(e.document.uri);
        clearTimeout(this.timers.get(uri));
        this.timers.delete(uri);
        this.caches.delete(uri);
        this.settings.delete(uri);
        this.analyzedVersion.delete(uri);
        // Back to what is on disk; a file deleted while open leaves the index now,
        // unless the editor opened it again while we read (close + open on a language
        // mode change).
        if (!(await this.indexFromDisk(uri)) && !this.documents.get(e.document.uri)) this.index.delete(uri);
        this.publishAll();
      });
    });

    c.onHover((p) => this.guard("hover", () => (this.flush(p.textDocument.uri), hover(this.index, canonical(p.textDocument.uri), p.position)), null));
    c.onCompletion((p) =>
      this.guard("completion", () => {
        const doc = this.documents.get(p.textDocument.uri);
        if (!doc) return [];
        this.flush(doc.uri);
        return completeUpstream(this.index, canonical(doc.uri), doc, p.position);
      }, []),
    );
    c.onDefinition((p) => this.guard("definition", () => (this.flush(p.textDocument.uri), definition(this.index, canonical(p.textDocument.uri), p.position)), null));
    c.onReferences((p) =>
      this.guard("references", () => (this.flush(p.textDocument.uri), references(this.index, canonical(p.textDocument.uri), p.position, p.context.includeDeclaration)), []),
    );
    c.onPrepareRename((p) => this.guard("prepareRename", () => (this.flush(p.textDocument.uri), prepareRename(this.index, canonical(p.textDocument.uri), p.position)), null));
    // Rename errors (an invalid id) must reach the user, so they are not swallowed.
    c.onRenameRequest((p) => (this.flush(p.textDocument.uri), rename(this.index, canonical(p.textDocument.uri), p.position, p.newName)));
    c.onDocumentSymbol((p) => this.guard("symbols", () => this.withFile(p.textDocument.uri, documentSymbols, []), []));
    c.onFoldingRanges((p) => this.guard("folding", () => this.withFile(p.textDocument.uri, foldingRanges, []), []));
    c.onCodeAction((p) =>
      this.guard("codeAction", () => this.withFile(p.textDocument.uri, (f) => quickFixes(p.textDocument.uri, p.context.diagnostics, this.index.diagnostics(f.uri)), []), []),
    );
    c.onCodeLens((p) => this.guard("codeLens", () => this.withFile(p.textDocument.uri, (f) => codeLenses(f, this.index.diagnostics(f.uri).filter((d) => d.severity === SEVERITY.error).length), []), []));

    c.onRequest(WorkflowsRequest, async () => {
      await this.indexing;
      return { workflows: this.guard("workflows", () => this.summaries(), []) };
    });
    c.onRequest(DagRequest, async (p) => {
      await this.indexing;
      return this.guard("dag", () => this.layout(p), null);
    });
    c.onRequest(DagSvgRequest, async (p) => {
      await this.indexing;
      return this.guard("dagSvg", () => {
        const layout = this.layout(p);
        return layout ? { svg: renderDagSvg(layout, { title: layout.workflow }) } : null;
      }, null);
    });

    this.documents.listen(c);
    c.listen();
  }

  private schedule(doc: TextDocument): void {
    const uri = canonical(doc.uri);
    if (!isWorkflowFile(uri) || this.analyzedVersion.get(uri) === doc.version) return;
    clearTimeout(this.timers.get(uri));
    void this.getSettings(uri).then((s) => {
      // The document may have been closed while the settings were on their way.
      if (!this.documents.get(doc.uri)) return;
      clearTimeout(this.timers.get(uri));
      this.timers.set(uri, setTimeout(() => this.guard("analyze", () => this.analyzeNow(doc)), s.diagnostics.debounceMs));
    }, this.logError);
  }

  /** Analyze a document now if an analysis of it is pending. */
  private flush(uri: string): void {
    const key = canonical(uri);
    if (!this.timers.has(key)) return;
    const doc = this.documents.get(uri);
    if (doc) this.analyzeNow(doc);
  }

  private analyzeNow(doc: TextDocument): void {
    const uri = canonical(doc.uri);
    if (!isWorkflowFile(uri)) return;
    clearTimeout(this.timers.get(uri));
    this.timers.delete(uri);
    // The latest version: a timer may hold an older document object. A closed
    // document is the disk's business again.
    const current = this.documents.get(doc.uri);
    if (!current) return;
    this.analyzedVersion.set(uri, current.version);
    let cache = this.caches.get(uri);
    if (!cache) this.caches.set(uri, (cache = new StatementCache()));
    const limit = this.cachedSettings(uri)?.maxFileSize ?? DEFAULT_SETTINGS.maxFileSize;
    this.index.set(analyzeFile(uri, current.getText(), { cache, maxFileSize: limit }));
    this.publishAll(uri);
  }

  /** Returns false when the file cannot be read (gone, or unreadable). */
  private async indexFromDisk(uri: string): Promise<boolean> {
    let text: string;
    try {
      text = await readFile(fileURLToPath(uri), "utf8");
    } catch {
      return false;
    }
    const s = await this.getSettings(uri);
    if (this.documents.get(uri)) return true; // opened while we read: the editor's text wins
    this.index.set(analyzeFile(uri, text, { maxFileSize: s.maxFileSize }));
    return true;
  }

  /**
   * Indexes every workflow file of the workspace that is not open. The files are analyzed
   * in a child process (dist/analyze.js), in batches: the parse garbage of hundreds of
   * files is freed with that process instead of staying in the server's heap for its
   * whole life. Without the child (not built, or it fails), files are analyzed here.
   */
  private async indexWorkspace(): Promise<void> {
    const child = existsSync(ANALYZER_PATH) ? new AnalyzerProcess(ANALYZER_PATH, 1000) : undefined;
    try {
      for (const root of this.roots) {
        const paths = await findWorkflowFiles(root);
        for (let i = 0; i < paths.length; i += INDEX_BATCH) {
          const batch: { uri: string; path: string; maxFileSize: number }[] = [];
          for (const path of paths.slice(i, i + INDEX_BATCH)) {
            const uri = canonical(pathToFileURL(path).href);
            if (!this.documents.get(uri)) batch.push({ uri, path, maxFileSize: (await this.getSettings(uri)).maxFileSize });
          }
          let indexed = false;
          if (child && batch.length > 0) {
            try {
              const { analyses } = await child.index(batch);
              // Opened while the child read it: the editor's text wins.
              for (const a of analyses) if (!this.documents.get(a.uri)) this.index.set(a);
              indexed = true;
            } catch (e) {
              this.logError(e);
            }
          }
          if (!indexed) for (const f of batch) if (!this.documents.get(f.uri)) await this.indexFromDisk(f.uri);
          await new Promise((r) => setImmediate(r));
        }
      }
    } finally {
      child?.close();
    }
    this.publishAll();
  }

  /**
   * Send diagnostics for every file whose diagnostics changed; cross-file checks mean an
   * edit in one file can change another's. `always` is re-sent even when unchanged, so
   * that a client sees an answer to each edit.
   */
  private publishAll(always?: string): void {
    const seen = new Set<string>();
    for (const file of this.index.all()) {
      seen.add(file.uri);
      const diagnostics = this.index.diagnostics(file.uri).map(toLsp);
      const key = JSON.stringify(diagnostics);
      if (file.uri !== always && this.published.get(file.uri) === key) continue;
      this.published.set(file.uri, key);
      void this.connection.sendDiagnostics({ uri: file.uri, diagnostics }).catch(this.logError);
    }
    for (const uri of [...this.published.keys()]) {
      if (seen.has(uri)) continue;
      this.published.delete(uri);
      void this.connection.sendDiagnostics({ uri, diagnostics: [] }).catch(this.logError);
    }
  }

  private getSettings(uri: string): Promise<ServerSettings> {
    if (!this.canPullConfiguration) return Promise.resolve(DEFAULT_SETTINGS);
    const known = this.settings.get(uri);
    if (known) return known.pending;
    const entry: { pending: Promise<ServerSettings>; value?: ServerSettings } = {
      pending: this.connection.workspace
        .getConfiguration({ scopeUri: uri, section: "tideflow" })
        .then((raw: unknown) => (entry.value = mergeSettings(raw)), () => (entry.value = DEFAULT_SETTINGS)),
    };
    this.settings.set(uri, entry);
    return entry.pending;
  }

  /** Settings already received for `uri`, without waiting for the client. */
  private cachedSettings(uri: string): ServerSettings | undefined {
    return this.settings.get(uri)?.value;
  }

  private withFile<T>(uri: string, f: (file: FileAnalysis) => T, fallback: T): T {
    this.flush(uri);
    const file = this.index.get(canonical(uri));
    return file ? f(file) : fallback;
  }

  private summaries(): WorkflowSummary[] {
    const out: WorkflowSummary[] = [];
    for (const file of this.index.all()) {
      const wf = file.workflow;
      if (!wf) continue;
      const diags = this.index.diagnostics(file.uri);
      const graph = this.index.graph(wf.id);
      out.push({
        id: wf.id,
        uri: file.uri,
        range: wf.range,
        schedule: wf.schedule,
        ...(diags.some((d) => d.code === "invalid-cron") ? { scheduleInvalid: true } : {}),
        timezone: wf.timezone,
        tasks: wf.tasks.map((t) => ({
          id: t.id,
          kind: t.kind,
          range: t.range,
          upstream: t.upstream.map((u) => (u.workflow ? `${u.workflow}.${u.task}` : u.task)),
        })),
        edges: this.index.workflowFile(wf.id) === file ? graph?.edges ?? [] : [],
        diagnostics: {
          errors: diags.filter((d) => d.severity === 1).length,
          warnings: diags.filter((d) => d.severity === 2).length,
        },
      });
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  private layout(p: DagParams): DagLayout | null {
    let id = p.workflow;
    if (!id && p.uri) {
      this.flush(p.uri);
      id = this.index.get(canonical(p.uri))?.workflow?.id;
    }
    const graph = id ? this.index.graph(id) : undefined;
    if (!graph) return null;
    // Layout is the slow part and graphs change rarely compared to requests.
    const key = JSON.stringify(graph);
    let layout = this.layouts.get(key);
    if (!layout) {
      layout = layoutDag(graph);
      if (this.layouts.size >= LAYOUT_CACHE_SIZE) this.layouts.delete(this.layouts.keys().next().value!);
      this.layouts.set(key, layout);
    }
    return layout;
  }

  private guard<T>(what: string, f: () => T, fallback?: T): T {
    try {
      return f();
    } catch (e) {
      this.logError(new Error(`${what} failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`));
      return fallback as T;
    }
  }

  private async guardAsync(what: string, f: () => Promise<void>): Promise<void> {
    try {
      await f();
    } catch (e) {
      this.logError(new Error(`${what} failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`));
    }
  }

  private readonly logError = (e: unknown): void => {
    this.connection.console.error(e instanceof Error ? e.stack ?? e.message : String(e));
  };
}

/** One spelling per file, whether the URI came from the editor or from a path on disk. */
function canonical(uri: string): string {
  if (!uri.startsWith("file:")) return uri;
  try {
    return pathToFileURL(fileURLToPath(uri)).href;
  } catch {
    return uri;
  }
}

function clampChange(doc: TextDocument, change: TextDocumentContentChangeEvent): TextDocumentContentChangeEvent {
  if (!("range" in change)) return change;
  // Only lines past the end trigger the bug; everything else the library clamps itself.
  const end = doc.positionAt(Number.MAX_SAFE_INTEGER);
  const clamp = (p: Position) => (p.line >= doc.lineCount ? end : p);
  return { text: change.text, range: { start: clamp(change.range.start), end: clamp(change.range.end) } };
}

function toLsp(d: TideflowDiagnostic): Diagnostic {
  return { range: d.range, severity: d.severity, code: d.code, source: "tideflow", message: d.message, ...(d.fix ? { data: d.fix } : {}) };
}

/**
 * Quick fixes for the diagnostics the editor asks about: each one's `data` (the fix the
 * analyzer attached), or, from a client that does not send `data` back, the fix of the
 * current diagnostic with the same code, start and message.
 */
function quickFixes(uri: string, asked: Diagnostic[], current: TideflowDiagnostic[]): CodeAction[] {
  const out: CodeAction[] = [];
  for (const d of asked) {
    if (d.source !== "tideflow") continue;
    const same = (x: TideflowDiagnostic) =>
      x.code === d.code && x.message === d.message && x.range.start.line === d.range.start.line && x.range.start.character === d.range.start.character;
    const fix = (d.data as TideflowDiagnostic["fix"] | undefined) ?? current.find(same)?.fix;
    if (!fix || !Array.isArray(fix.edits)) continue;
    out.push({ title: fix.title, kind: CodeActionKind.QuickFix, diagnostics: [d], isPreferred: true, edit: { changes: { [uri]: fix.edits } } });
  }
  return out;
}

function mergeSettings(raw: unknown): ServerSettings {
  const r = (raw ?? {}) as Partial<{ diagnostics: Partial<ServerSettings["diagnostics"]>; maxFileSize: unknown }>;
  const debounce = r.diagnostics?.debounceMs;
  return {
    diagnostics: {
      debounceMs: typeof debounce === "number" && debounce >= 0 ? debounce : DEFAULT_SETTINGS.diagnostics.debounceMs,
    },
    maxFileSize: typeof r.maxFileSize === "number" && r.maxFileSize > 0 ? r.maxFileSize : DEFAULT_SETTINGS.maxFileSize,
  };
}
