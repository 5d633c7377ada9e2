/**
 * The extension's link to the workspace's runner, over the one runner client that the CLI
 * uses too (common/runner-client.ts):
 * - at activation it only attaches to a runner that already runs (one the CLI started,
 *   say); a runner is started on first need, by a run command (`ensure`);
 * - when the socket drops while the runner's `runner.json` still names a live process it
 *   reconnects with backoff; every (re)connection subscribes to records and tells the
 *   listeners, who fetch the state again (the same path as a `resync` event);
 * - `.tideflow/runner.json` is watched, so a runner started from a terminal is attached
 *   to at once;
 * - a runner this window started is stopped when the window closes, unless
 *   `tideflow.runner.keepAlive` is set.
 * Invariant: `client` is set exactly while `state` is `connected`.
 */
import { join } from "node:path";
import * as vscode from "vscode";
import type { ApiEvent, ApiMethod, ApiMethods, RunnerInfo } from "../protocol/api";
import { connectRunning, ensureRunner, readRunnerInfo, RunnerClient } from "../common/runner-client";
import { processAlive } from "../common/process-alive";

export type ConnectionState = "stopped" | "connecting" | "connected" | "unreachable";

const BACKOFF_MS = [250, 500, 1000, 2000, 5000];
const STOPPING = "the runner is stopping";

export class RunnerConnection implements vscode.Disposable {
  state: ConnectionState = "stopped";
  private client: RunnerClient | undefined;
  private startedHere = false;
  private stoppingOnPurpose = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private connecting: Promise<RunnerClient | undefined> | undefined;
  private disposed = false;
  private readonly stateEmitter = new vscode.EventEmitter<ConnectionState>();
  private readonly connectedEmitter = new vscode.EventEmitter<RunnerClient>();
  private readonly eventEmitter = new vscode.EventEmitter<ApiEvent>();
  private readonly crashEmitter = new vscode.EventEmitter<{ pid: number }>();
  /** The runner whose connection went without a `stopping` notice, until we know whether it died. */
  private unannounced: { pid: number } | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  /** Fires on every state change. */
  readonly onDidChangeState = this.stateEmitter.event;
  /** Fires after each (re)connection, once subscribed to records: fetch the state now. */
  readonly onDidConnect = this.connectedEmitter.event;
  readonly onEvent = this.eventEmitter.event;
  /**
   * Fires when the runner died without saying it was stopping (killed, crashed): its
   * process is gone, the state the views show is only what it last reported, and its
   * attempts may still run, for the next runner to adopt.
   */
  readonly onDidCrash = this.crashEmitter.event;

  constructor(
    /** The workspace folder; undefined with no folder open (then no runner: it keeps its state in the folder). */
    readonly root: string | undefined,
    private readonly runnerPath: string,
    private readonly log: (line: string) => void,
    private readonly keepAlive: () => boolean,
  ) {
    this.disposables.push(this.stateEmitter, this.connectedEmitter, this.eventEmitter, this.crashEmitter);
    if (!root) return;
    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(join(root, ".tideflow")), "runner.json"));
    const onInfo = () => {
      if (this.state !== "connected" && !this.connecting) void this.attach();
    };
    watcher.onDidCreate(onInfo, undefined, this.disposables);
    watcher.onDidChange(onInfo, undefined, this.disposables);
    this.disposables.push(watcher);
  }

  get info(): RunnerInfo | undefined {
    return this.client?.info;
  }

  /** Attaches to a runner that already runs; never starts one. */
  attach(): Promise<RunnerClient | undefined> {
    const root = this.root;
    if (!root) return Promise.resolve(undefined);
    return this.open(async () => {
      const client = await connectRunning(root);
      return client && { client, started: false };
    });
  }

  /**
   * Connects, starting the workspace's runner when none runs. Callers check Workspace
   * Trust first; this checks it again, so no path starts a runner in Restricted Mode.
   */
  async ensure(): Promise<RunnerClient> {
    if (!vscode.workspace.isTrusted) throw new Error("Tideflow does not start the runner in Restricted Mode: trust this workspace to run workflows.");
    if (this.client) return this.client;
    const root = this.root;
    if (!root) throw new Error("open a folder first: the runner keeps its journal and logs in the workspace folder's .tideflow/");
    const client = await this.open(() =>
      ensureRunner(root, this.runnerPath, {
        // Under desktop VS Code the extension host is Electron: make it behave as Node.
        env: { ...process.env, ELECTRON_RUN_AS_NODE: "1" },
      }),
    );
    if (!client) throw new Error("the runner did not start; see the Tideflow output");
    return client;
  }

  async request<M extends ApiMethod>(method: M, params: ApiMethods[M]["params"]): Promise<ApiMethods[M]["result"]> {
    const client = this.client ?? (await this.attach());
    if (!client) throw new NotRunningError();
    return client.request(method, params);
  }

  /** Asks the runner to stop (its running attempts are killed and recorded first). */
  async stopRunner(): Promise<boolean> {
    const client = this.client ?? (await this.attach());
    if (!client) return false;
    this.stoppingOnPurpose = true;
    await client.request("runner.stop", {});
    return true;
  }

  private open(connect: () => Promise<{ client: RunnerClient; started: boolean } | undefined>): Promise<RunnerClient | undefined> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      if (this.state !== "connected") this.setState("connecting");
      try {
        const got = await connect();
        if (!got || this.disposed) {
          got?.client.close();
          this.setState(this.runnerPidAlive() ? "unreachable" : "stopped");
          return undefined;
        }
        // Only a runner this window started is stopped with the window (not one the CLI started later).
        this.startedHere = got.started;
        if (got.started) {
          this.log(`started the runner (pid ${got.client.info.pid}) for ${this.root}`);
        } else this.log(`attached to the runner (pid ${got.client.info.pid}) on port ${got.client.info.port}`);
        await this.adopt(got.client);
        return got.client;
      } catch (e) {
        this.log(`cannot reach the runner: ${e instanceof Error ? e.message : String(e)}`);
        this.setState(this.runnerPidAlive() ? "unreachable" : "stopped");
        throw e;
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  private async adopt(client: RunnerClient): Promise<void> {
    client.onEvent((e) => {
      if (e.event === "stopping") return this.lost(client, client.stopAnnounced ? STOPPING : "the connection closed");
      this.eventEmitter.fire(e);
    });
    client.onClose(() => this.lost(client, "the connection closed"));
    await client.request("subscribe", { records: true });
    this.client = client;
    this.attempt = 0;
    this.stoppingOnPurpose = false;
    this.unannounced = undefined;
    this.setState("connected");
    this.connectedEmitter.fire(client);
  }

  private lost(client: RunnerClient, why: string): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.close();
    this.log(`runner connection lost: ${why}`);
    if (this.disposed) return;
    if (this.stoppingOnPurpose) {
      this.stoppingOnPurpose = false;
      this.startedHere = false;
      this.setState("stopped");
      return;
    }
    // A runner that stops on request says so first ("stopping"); one that just goes died.
    this.unannounced = client.stopAnnounced ? undefined : { pid: client.info.pid };
    if (!processAlive(client.info.pid)) {
      this.setState("stopped");
      this.reportCrash();
      return;
    }
    this.setState("connecting");
    this.scheduleReconnect();
  }

  /** The runner that went without notice is gone: say so, once. */
  private reportCrash(): void {
    const lost = this.unannounced;
    this.unannounced = undefined;
    if (lost && !this.disposed) {
      this.log(`the runner (pid ${lost.pid}) stopped unexpectedly`);
      this.crashEmitter.fire(lost);
    }
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.disposed) return;
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.attach().then(
        (client) => {
          if (client) return;
          // No runner.json, or its process is gone: the runner stopped (or crashed); a run command starts a new one.
          if (!this.runnerPidAlive()) {
            this.setState("stopped");
            return this.reportCrash();
          }
          this.setState("unreachable");
          this.scheduleReconnect();
        },
        () => this.scheduleReconnect(),
      );
    }, delay);
  }

  private runnerPidAlive(): boolean {
    if (!this.root) return false;
    const info = readRunnerInfo(this.root);
    return info !== undefined && processAlive(info.pid);
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.stateEmitter.fire(state);
  }

  /** On window close: stop a runner this window started (unless keepAlive), close the socket. */
  async shutdown(): Promise<void> {
    this.disposed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const client = this.client;
    if (!client) return;
    if (this.startedHere && !this.keepAlive()) {
      this.stoppingOnPurpose = true;
      await Promise.race([client.request("runner.stop", {}).catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
    }
    client.close();
    this.client = undefined;
  }

  dispose(): void {
    void this.shutdown();
    for (const d of this.disposables) d.dispose();
  }
}

/** A request that needs the runner found none running. */
export class NotRunningError extends Error {
  constructor() {
    super("the runner is not running (start it with Tideflow: Start Runner, or run a workflow)");
  }
}
