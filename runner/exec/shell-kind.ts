/**
 * The `shell` executor kind: `bash -c <command>` on this machine, started by the spawn
 * helper (./spawner-client.ts) in a process group of its own, its output in capture files
 * that the runner tails (./capture.ts says why files and not pipes), its exit status also
 * written by bash to an exit file (./shell.ts). Its handle is `{ executor: "shell", pid }`,
 * pid being the process group; a runner that restarts after a crash adopts the attempt
 * from it: reads on from where the log ends, learns its end by polling and from the exit
 * file, and can kill it as any attempt.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { AttemptExit, AttemptHandle } from "../../protocol/runner";
import { formatDuration } from "../../common/durations";
import type { AttemptLog } from "../logs";
import { CapturePool, removeCaptureFiles } from "./capture-pool";
import { CaptureTail, fileSize, loggedLines, offsetAfterLines, readExitFile } from "./capture";
import type { AttemptContext, AttemptControl, ExecutorKind, KindEnvironment, KindFactory } from "./kinds";
import { findMarkedProcesses, findMarkedSince, killProcessGroup, processGroupAlive } from "./process-tree";
import { attemptEnv, capturePaths, shellArgs, type CapturePaths } from "./shell";
import { Spawner } from "./spawner-client";

/** Capture files are read this soon after a start, then this often while the attempt runs. */
const CAPTURE_FIRST_POLL_MS = 20;
const CAPTURE_POLL_MS = 50;
/** An attempt this runner is not the parent of (adopted, or its helper died) is checked for its end this often. */
const WATCH_POLL_MS = 100;

export const ADOPTED_UNKNOWN_EXIT =
  "the runner restarted and the attempt's process ended with no known exit status (it left no exit file); it runs again as a failover attempt";
const LOST_UNKNOWN_EXIT = "the attempt's process ended with no known exit status (the spawn helper died and it left no exit file)";

/** `shell` in the kinds table; `helperPath` is dist/spawner.js. */
export function shellKind(helperPath: string): KindFactory {
  return (env) => new ShellKind(env, helperPath);
}

interface Capture {
  drain(): Promise<void>;
}

class ShellKind implements ExecutorKind {
  readonly name = "shell";
  private spawner: Spawner | undefined;
  private readonly pool: CapturePool;
  /** Attempts started and not yet drained: sizes the spare stock. */
  private running = 0;

  constructor(
    private readonly env: KindEnvironment,
    private readonly helperPath: string,
  ) {
    this.pool = new CapturePool(join(env.stateDir, "capture"));
  }

  start(ctx: AttemptContext): AttemptControl {
    const { effect } = ctx;
    const command = effect.command;
    if (command === undefined) {
      queueMicrotask(() => ctx.ended({ error: `could not start: shell task ${effect.task} has no command` }));
      return { kill: () => {} };
    }
    // Spare files made ahead (./capture-pool.ts says why): nothing is created on the way.
    const { name, paths } = this.pool.take(this.running);
    const capture = this.capture(ctx.log, paths, 0, 0);
    let pid: number | undefined;
    let killing: (() => void) | undefined;
    let killRequested = false;
    const kill = (onEscalate: () => void): void => {
      killRequested = true;
      killing = () => void killProcessGroup(pid!, this.env.killGraceMs, onEscalate, ctx.marker);
      if (pid !== undefined) killing();
    };
    this.running++;
    this.spawnerOf().spawn(
      {
        file: "bash",
        args: shellArgs(command),
        cwd: this.env.root,
        env: { ...attemptEnv(effect), TIDEFLOW_EXIT_FILE: paths.exit },
        stdout: paths.stdout,
        stderr: paths.stderr,
      },
      {
        spawned: (p) => {
          pid = p;
          ctx.spawned({ executor: this.name, pid: p, ref: name }, `bash -c ${command}`);
          killing?.(); // a kill that came before the process existed
        },
        failed: (error) => ctx.ended({ error: `could not start bash: ${error}` }),
        exited: (code, signal) => this.afterExit(ctx, pid!, () => killRequested, signal !== null ? { signal } : { exitCode: code ?? undefined }),
        lost: () => this.watch(ctx, pid!, paths, LOST_UNKNOWN_EXIT),
      },
    );
    return {
      kill,
      drain: () => {
        this.running--;
        return capture.drain();
      },
      cleanup: () => this.pool.release(name),
    };
  }

  adopt(ctx: AttemptContext, handle: AttemptHandle): AttemptControl | undefined {
    const found = this.captureOf(ctx, handle);
    if (!found) return undefined;
    const { paths, name } = found;
    if (name !== undefined) this.pool.claim(name);
    const { pid } = handle;
    const logged = loggedLines(ctx.logPath);
    const outAt = offsetAfterLines(paths.stdout, logged.stdout);
    const errAt = offsetAfterLines(paths.stderr, logged.stderr);
    const running = alive(pid, ctx.marker);
    const unread = fileSize(paths.stdout) - outAt + fileSize(paths.stderr) - errAt;
    ctx.log.write(
      "system",
      "WARN",
      `attempt ${ctx.effect.attempt} adopted by runner ${process.pid} after a restart: process group ${pid} ${running ? "still running" : "had ended"}` +
        (unread > 0 ? `; ${unread} byte(s) of output written while no runner was watching follow, stamped with the time they were read` : ""),
    );
    const capture = this.capture(ctx.log, paths, outAt, errAt);
    this.watch(ctx, pid, paths, ADOPTED_UNKNOWN_EXIT);
    return {
      kill: (onEscalate) => void killProcessGroup(pid, this.env.killGraceMs, onEscalate, ctx.marker),
      drain: capture.drain,
      cleanup: () => (name !== undefined ? this.pool.release(name) : removeCaptureFiles(paths)),
    };
  }

  /** A run with shell tasks is being created: the spawn helper and the first spares are made now. */
  prewarm(): void {
    this.spawnerOf().warm();
    this.pool.prepare();
  }

  /** Made on the first shell attempt (or `prewarm`). */
  private spawnerOf(): Spawner {
    return (this.spawner ??= new Spawner(this.helperPath, this.env.baseEnv));
  }

  /** Adoption is over: capture files no attempt owns go. */
  recovered(): void {
    this.pool.sweep();
  }

  /**
   * The capture files of an attempt to adopt: the spare its handle names; for a handle
   * that never reached the journal, the spare named in its live process's environment, or
   * the one whose exit file names the attempt; for an attempt of an older runner, the
   * files beside its log. Undefined: none exist, it cannot be adopted.
   */
  private captureOf(ctx: AttemptContext, handle: AttemptHandle): { paths: CapturePaths; name?: string } | undefined {
    const exists = (p: CapturePaths) => existsSync(p.stdout) && existsSync(p.stderr);
    let name = handle.ref;
    if (name === undefined && handle.pid > 0) name = spareInEnvironment(handle.pid, this.pool.dir);
    name ??= this.pool.findByExitMarker(ctx.marker);
    if (name !== undefined) {
      const paths = this.pool.pathsOf(name);
      return exists(paths) ? { paths, name } : undefined;
    }
    const legacy = capturePaths(ctx.logPath);
    return exists(legacy) ? { paths: legacy } : undefined;
  }

  close(): Promise<void> {
    this.pool.close();
    return this.spawner?.close() ?? Promise.resolve();
  }

  /**
   * bash exited. Processes still running are the attempt's (in its group, or outside it
   * with its marker: `setsid`, daemons): they are ended before the attempt counts as ended.
   */
  private afterExit(ctx: AttemptContext, pid: number, killRequested: () => boolean, exit: AttemptExit): void {
    const inGroup = processGroupAlive(pid);
    const escaped = inGroup ? [] : findMarkedSince(pid, ctx.marker).pids;
    if (!inGroup && escaped.length === 0) return ctx.ended(exit);
    let onEscalate: (() => void) | undefined;
    if (!killRequested()) {
      const grace = formatDuration(this.env.killGraceMs);
      ctx.log.write(
        "system",
        "WARN",
        inGroup
          ? `the main process exited but left processes in group ${pid}: ending them`
          : `the main process exited but left ${escaped.length} process(es) outside its group (pid ${escaped.join(", ")}): ending them (SIGTERM, SIGKILL after ${grace})`,
      );
      onEscalate = () => ctx.log.write("system", "WARN", `processes left by the attempt still running ${grace} after SIGTERM: SIGKILL`);
    }
    void killProcessGroup(pid, this.env.killGraceMs, onEscalate, ctx.marker).then(() => ctx.ended(exit));
  }

  /** Polls an attempt this runner is not the parent of until it is gone; its end is what the exit file says. */
  private watch(ctx: AttemptContext, pid: number, paths: CapturePaths, unknown: string): void {
    const done = (): void => ctx.ended(readExitFile(paths.exit, ctx.marker) ?? { error: unknown, interrupted: true });
    const poll = (): void => {
      if (alive(pid, ctx.marker)) setTimeout(poll, WATCH_POLL_MS);
      else done();
    };
    if (alive(pid, ctx.marker)) setTimeout(poll, WATCH_POLL_MS);
    else queueMicrotask(done);
  }

  /** Tails the capture files into the log while the attempt runs; `drain` reads them to the end. */
  private capture(log: AttemptLog, paths: CapturePaths, outAt: number, errAt: number): Capture {
    const tails = [new CaptureTail(paths.stdout, "stdout", log, outAt), new CaptureTail(paths.stderr, "stderr", log, errAt)];
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const tick = (): void => {
      timer = undefined;
      void Promise.all(tails.map((t) => t.pump())).then(() => {
        if (!done) timer = setTimeout(tick, CAPTURE_POLL_MS);
      });
    };
    timer = setTimeout(tick, CAPTURE_FIRST_POLL_MS);
    return {
      drain: async () => {
        done = true;
        if (timer) clearTimeout(timer);
        timer = undefined;
        await Promise.all(tails.map((t) => t.pump()));
        for (const t of tails) t.close();
      },
    };
  }
}

/** The spare named by `TIDEFLOW_EXIT_FILE` in the environment process `pid` was started with, if it is one of `dir`'s. */
function spareInEnvironment(pid: number, dir: string): string | undefined {
  let environ: string;
  try {
    environ = readFileSync(`/proc/${pid}/environ`, "utf8");
  } catch {
    return undefined;
  }
  const entry = environ.split("\0").find((e) => e.startsWith("TIDEFLOW_EXIT_FILE="));
  const path = entry?.slice("TIDEFLOW_EXIT_FILE=".length);
  return path?.startsWith(`${dir}/`) && path.endsWith(".exit") ? path.slice(dir.length + 1, -".exit".length) : undefined;
}

/** Alive while its process group has a live member, or a process carries its marker. */
function alive(pid: number, marker: string): boolean {
  return (pid > 0 && processGroupAlive(pid)) || findMarkedProcesses(marker).length > 0;
}
