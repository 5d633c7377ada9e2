/**
 * Starts the real language server (`node dist/server.js --stdio`) and talks LSP to it
 * through vscode-languageserver-protocol's client connection. Tests wait on the server's
 * notifications, never on sleeps.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import {
  ConfigurationRequest,
  DidChangeTextDocumentNotification,
  DidCloseTextDocumentNotification,
  DidOpenTextDocumentNotification,
  ExitNotification,
  InitializeRequest,
  InitializedNotification,
  PublishDiagnosticsNotification,
  RegistrationRequest,
  ShutdownRequest,
  createProtocolConnection,
  type Diagnostic,
  type ProtocolConnection,
  type TextDocumentContentChangeEvent,
} from "vscode-languageserver-protocol/node";
import { StreamMessageReader, StreamMessageWriter } from "vscode-jsonrpc/node";

export const ROOT = resolve(__dirname, "../..");
export const SERVER = join(ROOT, "dist/server.js");
export const EXAMPLES = join(ROOT, "examples");

export function uriOf(path: string): string {
  return pathToFileURL(path).href;
}

interface Waiter {
  uri: string;
  predicate: (d: Diagnostic[]) => boolean;
  resolve: (d: Diagnostic[]) => void;
}

export interface StartOptions {
  /** Workspace folder to index; none when omitted. */
  root?: string;
  settings?: Record<string, unknown>;
}

export class LspClient {
  readonly diagnostics = new Map<string, Diagnostic[]>();
  /** Every publishDiagnostics the server sent, in order. */
  readonly published: { uri: string; diagnostics: Diagnostic[] }[] = [];
  readonly logs: string[] = [];
  private readonly waiters: Waiter[] = [];
  private readonly versions = new Map<string, number>();
  private exited = false;

  private constructor(
    readonly connection: ProtocolConnection,
    readonly process: ChildProcess,
  ) {}

  static async start(options: StartOptions = {}): Promise<LspClient> {
    const child = spawn(process.execPath, [SERVER, "--stdio"], { stdio: ["pipe", "pipe", "pipe"] });
    const connection = createProtocolConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
    const client = new LspClient(connection, child);
    child.stderr!.on("data", (d: Buffer) => client.logs.push(d.toString()));
    child.on("exit", () => (client.exited = true));
    const settings = { diagnostics: { debounceMs: 0 }, ...options.settings };
    connection.onRequest(ConfigurationRequest.type, (p) => p.items.map(() => settings));
    connection.onRequest(RegistrationRequest.type, () => undefined);
    connection.onNotification("window/logMessage", (p: { message: string }) => {
      client.logs.push(p.message);
    });
    connection.onNotification(PublishDiagnosticsNotification.type, (p) => {
      client.diagnostics.set(p.uri, p.diagnostics);
      client.published.push(p);
      for (const w of [...client.waiters]) {
        if (w.uri === p.uri && w.predicate(p.diagnostics)) {
          client.waiters.splice(client.waiters.indexOf(w), 1);
          w.resolve(p.diagnostics);
        }
      }
    });
    connection.listen();
    const rootUri = options.root ? uriOf(options.root) : null;
    await connection.sendRequest(InitializeRequest.type, {
      processId: process.pid,
      rootUri,
      workspaceFolders: options.root ? [{ uri: rootUri!, name: "ws" }] : null,
      capabilities: {
        workspace: { configuration: true, didChangeWatchedFiles: { dynamicRegistration: true } },
        textDocument: { publishDiagnostics: {}, rename: { prepareSupport: true } },
      },
    });
    await connection.sendNotification(InitializedNotification.type, {});
    return client;
  }

  get alive(): boolean {
    return !this.exited && this.process.exitCode === null;
  }

  /** Resolves with the next diagnostics published for `uri` that satisfy `predicate`. */
  waitForDiagnostics(uri: string, predicate: (d: Diagnostic[]) => boolean = () => true, timeoutMs = 20_000): Promise<Diagnostic[]> {
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no matching diagnostics for ${uri} within ${timeoutMs} ms; last: ${JSON.stringify(this.diagnostics.get(uri))}\n${this.logs.join("")}`));
      }, timeoutMs);
      const waiter: Waiter = {
        uri,
        predicate,
        resolve: (d) => {
          clearTimeout(timer);
          resolvePromise(d);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** Diagnostics already published that match, or the next ones that will. */
  diagnosticsFor(uri: string, predicate: (d: Diagnostic[]) => boolean = () => true): Promise<Diagnostic[]> {
    const current = this.diagnostics.get(uri);
    if (current && predicate(current)) return Promise.resolve(current);
    return this.waitForDiagnostics(uri, predicate);
  }

  async open(uri: string, text: string, languageId = "typescript"): Promise<void> {
    this.versions.set(uri, 1);
    await this.connection.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId, version: 1, text } });
  }

  async openFile(path: string): Promise<string> {
    const uri = uriOf(path);
    await this.open(uri, readFileSync(path, "utf8"));
    return uri;
  }

  async change(uri: string, changes: TextDocumentContentChangeEvent[]): Promise<void> {
    const version = (this.versions.get(uri) ?? 1) + 1;
    this.versions.set(uri, version);
    await this.connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri, version }, contentChanges: changes });
  }

  async close(uri: string): Promise<void> {
    await this.connection.sendNotification(DidCloseTextDocumentNotification.type, { textDocument: { uri } });
  }

  async stop(): Promise<void> {
    if (this.alive) {
      try {
        await Promise.race([this.connection.sendRequest(ShutdownRequest.type), new Promise((r) => setTimeout(r, 2_000))]);
        await this.connection.sendNotification(ExitNotification.type);
      } catch {
        // already gone
      }
    }
    this.connection.dispose();
    if (this.alive) this.process.kill("SIGKILL");
  }
}

/** Position of the `n`-th occurrence of `needle` in `text`, plus `delta` characters. */
export function positionOf(text: string, needle: string, delta = 0, n = 1): { line: number; character: number } {
  let at = -1;
  for (let i = 0; i < n; i++) {
    at = text.indexOf(needle, at + 1);
    if (at === -1) throw new Error(`${JSON.stringify(needle)} not found ${n} times`);
  }
  const offset = at + delta;
  const before = text.slice(0, offset);
  const line = before.split("\n").length - 1;
  return { line, character: offset - (before.lastIndexOf("\n") + 1) };
}
