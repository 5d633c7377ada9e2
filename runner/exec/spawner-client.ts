/**
 * The runner's side of the spawn helper (./spawner.ts; protocol/spawner.ts says why it
 * exists). Started on the first shell attempt and kept; the base environment is sent
 * once. If the helper dies, the spawns it was waiting for are told `lost` — their
 * processes may still run, and the caller watches them another way (the process group
 * and the exit file, as for an adopted attempt) — and the next spawn starts a new helper.
 */
import { type ChildProcess, spawn } from "node:child_process";
import type { SpawnerEvent, SpawnerRequest, SpawnerSpawnRequest } from "../../protocol/spawner";

export interface SpawnCallbacks {
  spawned(pid: number): void;
  /** Nothing was started. */
  failed(error: string): void;
  exited(code: number | null, signal: NodeJS.Signals | null): void;
  /** The helper died before reporting the exit: the process may still run. */
  lost(): void;
}

export type SpawnOptions = Omit<SpawnerSpawnRequest, "t" | "id">;

export class Spawner {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, SpawnCallbacks & { pid?: number }>();
  private closed = false;

  constructor(
    private readonly helperPath: string,
    private readonly baseEnv: NodeJS.ProcessEnv,
  ) {}

  spawn(options: SpawnOptions, callbacks: SpawnCallbacks): void {
    if (this.closed) {
      queueMicrotask(() => callbacks.failed("the runner is stopping"));
      return;
    }
    const child = this.helper();
    const id = this.nextId++;
    this.waiting.set(id, callbacks);
    this.send(child, { t: "spawn", id, ...options });
  }

  /** Starts the helper now (it takes a Node start, ~0.1 s), so that the first spawn does not wait for it. */
  warm(): void {
    if (!this.closed) this.helper();
  }

  /** Lets the helper exit (its children keep running); resolves when it has. */
  close(): Promise<void> {
    this.closed = true;
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.stdin?.end();
    });
  }

  private helper(): ChildProcess {
    if (this.child) return this.child;
    const child = spawn(process.execPath, [this.helperPath], {
      // Not the runner's flags (a loader, an inspector port): the helper must stay small.
      execArgv: [],
      stdio: ["pipe", "pipe", "inherit"],
      // A small heap: its size is what every fork copies.
      env: { ...this.baseEnv, NODE_OPTIONS: "--max-old-space-size=64" },
    } as Parameters<typeof spawn>[2]);
    this.child = child;
    child.stdin!.on("error", () => {}); // a dead helper: `exit` below handles it
    let rest = "";
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      const text = rest + chunk;
      let from = 0;
      for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", from)) {
        this.onEvent(JSON.parse(text.slice(from, nl)) as SpawnerEvent);
        from = nl + 1;
      }
      rest = text.slice(from);
    });
    child.once("exit", () => {
      if (this.child === child) this.child = undefined;
      const waiting = [...this.waiting.values()];
      this.waiting.clear();
      for (const w of waiting) {
        if (w.pid === undefined) w.failed("the spawn helper exited before starting the process");
        else w.lost();
      }
    });
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.baseEnv)) if (v !== undefined) env[k] = v;
    this.send(child, { t: "env", env });
    return child;
  }

  private send(child: ChildProcess, req: SpawnerRequest): void {
    child.stdin!.write(`${JSON.stringify(req)}\n`);
  }

  private onEvent(e: SpawnerEvent): void {
    const w = this.waiting.get(e.id);
    if (!w) return;
    switch (e.t) {
      case "spawned":
        w.pid = e.pid;
        w.spawned(e.pid);
        return;
      case "failed":
        this.waiting.delete(e.id);
        w.failed(e.error);
        return;
      case "exit":
        this.waiting.delete(e.id);
        w.exited(e.code, e.signal as NodeJS.Signals | null);
        return;
    }
  }
}
