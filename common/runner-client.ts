/**
 * The one client of a workspace's runner, for the CLI and the extension: finds it through
 * `.tideflow/runner.json`, starts it in the background when none is running, and speaks
 * the typed API of protocol/api.ts.
 */
import { spawn } from "node:child_process";
import { mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { processCommand, sameProcessAlive } from "./process-alive";
import type { ApiError, ApiErrorCode, ApiEvent, ApiMethod, ApiMethods, ApiServerMessage, RunnerInfo } from "../protocol/api";

export class RunnerClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private readonly listeners = new Set<(e: ApiEvent) => void>();
  private readonly closeListeners = new Set<() => void>();
  private closedError: Error | undefined;
  /**
   * The runner itself said it is stopping (a `stopping` event on the socket, or a close
   * with code 1001, going away). The close of the socket is also passed to event listeners
   * as `stopping`; this tells the two apart: a connection that closes without either lost
   * a runner that died.
   */
  stopAnnounced = false;

  private constructor(
    private readonly socket: WebSocket,
    readonly info: RunnerInfo,
  ) {
    // An error on an open socket is followed by "close", which rejects what is pending.
    socket.on("error", () => undefined);
    socket.on("message", (data) => {
      const msg = JSON.parse(data.toString()) as ApiServerMessage;
      if ("event" in msg) {
        if (msg.event === "stopping") this.stopAnnounced = true;
        for (const l of this.listeners) l(msg);
        return;
      }
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if ("error" in msg) p.reject(new RunnerError(msg.error));
      else p.resolve(msg.result);
    });
    socket.on("close", (code) => {
      // 1001 "going away": the runner closes its clients so when it stops (api-server.ts).
      if (code === 1001) this.stopAnnounced = true;
      this.closedError = new Error("the runner closed the connection");
      for (const p of this.pending.values()) p.reject(this.closedError);
      this.pending.clear();
      for (const l of this.listeners) l({ event: "stopping" });
      for (const l of this.closeListeners) l();
    });
  }

  static connect(info: RunnerInfo, timeoutMs = 5000): Promise<RunnerClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(`ws://127.0.0.1:${info.port}/`, {
        headers: { authorization: `Bearer ${info.token}` },
        handshakeTimeout: timeoutMs,
        perMessageDeflate: false,
      });
      socket.once("open", () => resolve(new RunnerClient(socket, info)));
      socket.once("error", reject);
      socket.once("unexpected-response", (_req, res) => reject(new Error(`the runner refused the connection (HTTP ${res.statusCode})`)));
    });
  }

  request<M extends ApiMethod>(method: M, params: ApiMethods[M]["params"]): Promise<ApiMethods[M]["result"]> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  onEvent(listener: (e: ApiEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called once when the socket closes, whoever closed it. */
  onClose(listener: () => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  close(): void {
    this.socket.close();
  }
}

/** The runner refused a request: `code` says why to a program, the message to a person. */
export class RunnerError extends Error {
  readonly code: ApiErrorCode;
  constructor(readonly detail: ApiError) {
    super(detail.message);
    this.code = detail.code;
  }
}

/** How to start a runner process: `node <runnerPath>` by default. */
export interface StartOptions {
  /** The Node binary; default `process.execPath` (set `env.ELECTRON_RUN_AS_NODE` under Electron). */
  execPath?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export function readRunnerInfo(root: string): RunnerInfo | undefined {
  try {
    return JSON.parse(readFileSync(join(root, ".tideflow", "runner.json"), "utf8")) as RunnerInfo;
  } catch {
    return undefined;
  }
}

/** Connects to the workspace's running runner, or undefined when none runs. */
export async function connectRunning(root: string): Promise<RunnerClient | undefined> {
  const info = readRunnerInfo(root);
  if (!info || !sameProcessAlive(info.pid, info.pidStart)) return undefined;
  try {
    return await RunnerClient.connect(info);
  } catch {
    return undefined;
  }
}

/**
 * Connects to the workspace's runner, starting one in the background first when none
 * runs (its log: `.tideflow/runner.log`). `started` tells whether this call started it.
 */
export async function ensureRunner(root: string, runnerPath: string, options: StartOptions = {}): Promise<{ client: RunnerClient; started: boolean }> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const running = await connectRunning(root);
  if (running) return { client: running, started: false };
  const stateDir = join(root, ".tideflow");
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const out = openSync(join(stateDir, "runner.log"), "a", 0o600);
  const child = spawn(options.execPath ?? process.execPath, [runnerPath, "--workspace", root], {
    detached: true,
    env: options.env ?? process.env,
    stdio: ["ignore", out, out],
    cwd: root,
  });
  let exited: number | null | undefined;
  let exitedAt = 0;
  child.once("exit", (code) => {
    exited = code;
    exitedAt = Date.now();
  });
  child.unref();
  const deadline = Date.now() + timeoutMs;
  const log = join(stateDir, "runner.log");
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
    const client = await connectRunning(root);
    if (client) return { client, started: true };
    if (exited !== undefined && exited !== 3) throw new RunnerStartError(`the runner exited at start (code ${exited}); see ${log}`);
    // Exit code 3: the lock is held by a live process. Another runner that won a race to
    // start writes its runner.json within moments; one that does not is not answering.
    if (exited === 3 && Date.now() - exitedAt > LOCK_HOLDER_PATIENCE_MS) throw new RunnerStartError(lockHeldMessage(stateDir));
  }
  throw new RunnerStartError(`the runner did not come up within ${timeoutMs / 1000} s; see ${log}`);
}

/** How long a lock holder that is not answering gets to write its runner.json. */
const LOCK_HOLDER_PATIENCE_MS = 3000;

/** A runner could not be started or reached; the message says what to do. */
export class RunnerStartError extends Error {}

function lockHeldMessage(stateDir: string): string {
  const path = join(stateDir, "runner.lock");
  let pid: number | undefined;
  try {
    const text = readFileSync(path, "utf8").trim();
    pid = /^\d+$/.test(text) ? Number(text) : (JSON.parse(text) as { pid?: number }).pid;
  } catch {
    // gone meanwhile
  }
  const command = pid !== undefined ? processCommand(pid) : undefined;
  return (
    `${path} is held by pid ${pid ?? "?"}${command ? ` (${command})` : ""}, which does not answer as this workspace's runner; ` +
    `if it is a stuck runner, stop it (kill ${pid ?? "<pid>"}); if it is not a Tideflow runner, delete ${path}`
  );
}
