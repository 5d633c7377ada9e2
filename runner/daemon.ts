/**
 * The runner of one workspace: the engine's decisions made durable and carried out.
 *
 * The loop, for every decision (run creation, an operation, an attempt's exit, a timer):
 * 1. the engine decides synchronously, applying its records in memory;
 * 2. the records go to the journal (batched fdatasync, see journal.ts);
 * 3. once durable, the effects run (start/kill processes, set the wake timer) and the
 *    records are pushed to subscribed clients, and the client that asked gets its answer.
 * So nothing a client saw, and no process that was started, is missing from the journal
 * after a `kill -9`; at restart, attempts the journal shows running are ended (their
 * process groups killed) and failed with cause `recovery`, and retries and the rest of the
 * runs carry on.
 */
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import type {
  CreateRunParams,
  InstancesPage,
  InstancesPageParams,
  JournalDamage,
  LogsReadParams,
  LogsReadResult,
  OperateParams,
  OperateResult,
  RerunDownstreamParams,
  RunPlan,
  RunnerInfo,
  RunnerStatus,
  Target,
  TaskOperation,
} from "../protocol/api";
import { CHANGED_LINES_MAX } from "../protocol/api";
import type { WorkflowModel } from "../protocol/model";
import type { AttemptHandle, Decision, Effect, EngineRecord, OperationResult, Refusal, Run, RunSpec, StartEffect, WorkflowInstance } from "../protocol/runner";
import { AnalyzerProcess } from "../common/analyze-client";
import { type ApiClient, ApiFailure, type ApiServer, type Handler, startApiServer } from "./api-server";
import { Engine, planRun } from "../common/engine/engine";
import { OPERATION, OPERATION_FROM } from "../protocol/operations";
import { bundleWorkflow } from "./exec/bundle";
import { defaultRoute, Executor } from "./exec/executor";
import { attemptMarker } from "./exec/kinds";
import { findMarkedProcesses, killProcessGroup, processAlive, processGroupAlive, processGroupOf } from "./exec/process-tree";
import { processCommand, processStartTime, sameProcessAlive } from "../common/process-alive";
import { Journal } from "./journal";
import { LogStore, tightenStateDir } from "./logs";

export const VERSION = "0.1.0";

export interface RunnerOptions {
  /** The workspace root; state goes to `<root>/.tideflow/`. */
  root: string;
  /** dist/worker.js, dist/sdk.js and dist/analyze.js; default: next to this bundle. */
  workerPath?: string;
  sdkPath?: string;
  analyzerPath?: string;
  killGraceMs?: number;
  /** fdatasync journal batches (default true). */
  sync?: boolean;
  log?: (message: string) => void;
}

/** The longest a record journaled `later` waits for a decision to go with. */
const LATER_MS = 10;

/**
 * The handle of an attempt the journal shows unended: as journaled; from an older journal
 * (a pid and no handle), a local attempt of the task's kind; with no pid at all (the
 * runner died before journaling it), the leader of the process group that carries the
 * attempt's marker, if one runs — else pid 0: nothing runs, but its files may say how it ended.
 */
function handleOf(a: { pid?: number; handle?: AttemptHandle; instanceId: string; task: string; attempt: number }, effect: StartEffect): AttemptHandle {
  if (a.handle) return a.handle;
  const executor = defaultRoute(effect);
  if (a.pid !== undefined) return { executor, pid: a.pid };
  const marked = findMarkedProcesses(attemptMarker(a));
  return { executor, pid: marked.find((pid) => processGroupOf(pid) === pid) ?? 0 };
}

export function stateDirOf(root: string): string {
  return join(root, ".tideflow");
}

export class Runner {
  readonly root: string;
  readonly stateDir: string;
  info!: RunnerInfo;
  private engine!: Engine;
  private journal!: Journal;
  private executor!: Executor;
  private logs!: LogStore;
  private api!: ApiServer;
  private analyzer!: AnalyzerProcess;
  /** What was found damaged in the journal at start (runner.status tells it). */
  private journalDamage: JournalDamage | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;
  /** Records journaled with the next decision (`commitLater`). */
  private later: EngineRecord[] = [];
  private laterTimer: NodeJS.Timeout | undefined;
  private wakeAt: number | undefined;
  private recordClients = new Set<ApiClient>();
  private nextSubscription = 1;
  private stopping: Promise<void> | undefined;
  private readonly log: (message: string) => void;
  /** Resolves when the runner has stopped. */
  readonly stopped: Promise<void>;
  private resolveStopped!: () => void;

  private constructor(private readonly options: RunnerOptions) {
    this.root = resolve(options.root);
    this.stateDir = stateDirOf(this.root);
    this.log = options.log ?? ((m) => process.stderr.write(`${new Date().toISOString()} ${m}\n`));
    this.stopped = new Promise((r) => (this.resolveStopped = r));
  }

  static async start(options: RunnerOptions): Promise<Runner> {
    const runner = new Runner(options);
    await runner.init();
    return runner;
  }

  private async init(): Promise<void> {
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    for (const line of tightenStateDir(this.stateDir)) this.log(line); // a .tideflow/ others could read
    mkdirSync(join(this.stateDir, "bundles"), { recursive: true, mode: 0o700 });
    this.lock();

    const t0 = performance.now();
    const journalPath = join(this.stateDir, "journal");
    const crashAt = Number(process.env.TIDEFLOW_TEST_JOURNAL_CRASH_AT) || undefined;
    const compactMinBytes = Number(process.env.TIDEFLOW_TEST_JOURNAL_COMPACT_BYTES) || undefined;
    const opened = Journal.open(journalPath, { sync: this.options.sync, crashAt, compactMinBytes });
    this.journal = opened.journal;
    if (opened.dropped) {
      this.log(`journal: dropped ${opened.dropped.bytes} byte(s): ${opened.dropped.reason}${opened.dropped.keptAs ? `; the original is kept as ${opened.dropped.keptAs}` : ""}`);
    }
    // Damage costs only what it hit (docs/runner-journal.md): unreadable lines are skipped,
    // records that no longer fit are applied as far as they tell the truth or skipped.
    const restored = Engine.restore(opened.snapshot, opened.records);
    this.engine = restored.engine;
    // Run ids stay taken by anything that names them: skipped records (restore), the
    // unreadable lines' text, log folders (`logs/<runId>@<cyctime>/`) and bundles.
    for (const line of opened.damage?.lines ?? []) for (const m of line.matchAll(/run-(\d+)/g)) this.engine.reserveRunIds(Number(m[1]));
    for (const dir of ["logs", "bundles"]) {
      let names: string[] = [];
      try {
        names = readdirSync(join(this.stateDir, dir));
      } catch {
        // none yet
      }
      for (const name of names) {
        const m = /^run-(\d+)(?:[@.]|$)/.exec(name);
        if (m) this.engine.reserveRunIds(Number(m[1]));
      }
    }
    if (opened.damage || restored.notApplied > 0) {
      this.journalDamage = {
        records: opened.damage?.records ?? 0,
        bytes: opened.damage?.bytes ?? 0,
        notApplied: restored.notApplied,
        ...(opened.damage ? { keptAs: opened.damage.keptAs } : {}),
        at: Date.now(),
      };
      this.log(
        `journal: ${journalPath} was damaged: ${this.journalDamage.records} unreadable record(s) (${this.journalDamage.bytes} bytes) dropped` +
          `${opened.damage ? ` (${opened.damage.reasons.join("; ")})` : ""}, ${restored.notApplied} record(s) no longer applied, ${restored.adjusted} applied from another state` +
          `${opened.damage ? `; the original is kept as ${opened.damage.keptAs}` : ""}`,
      );
      for (const p of restored.problems) this.log(`journal: not applied: ${p}`);
    } else if (restored.adjusted > 0) {
      this.log(`journal: ${restored.adjusted} record(s) applied from another state than they name (see docs/runner-journal.md)`);
    }
    // (A failed commit stops the runner and says why itself.)
    if (this.journalDamage) this.commit(this.engine.closeLostAttemptEnds(Date.now())).catch(() => undefined);
    this.logs = new LogStore(this.stateDir);
    this.analyzer = new AnalyzerProcess(this.options.analyzerPath ?? join(__dirname, "analyze.js"));
    this.executor = new Executor({
      root: this.root,
      stateDir: this.stateDir,
      logs: this.logs,
      workerPath: this.options.workerPath ?? join(__dirname, "worker.js"),
      killGraceMs: this.options.killGraceMs,
      onSpawn: (effect, handle) => {
        const record = this.engine.recordProcess(effect, effect.attempt, handle, Date.now());
        if (record) this.commitLater(record);
      },
      // The promise: the end is journaled; until then the attempt's capture files stay, so
      // that a runner that dies in between is followed by one that reads the end from them.
      onExit: (effect, exit) => {
        const r = this.engine.onAttemptExit(effect.instanceId, effect.task, effect.attempt, exit, Date.now());
        if (r.ok) return this.commit(r);
        this.log(`attempt exit not applied: ${r.reason}`);
      },
    });

    const adopted = await this.adoptOrEndLeftovers();
    const recovered = this.engine.recover(Date.now(), adopted);
    this.commit(recovered);
    this.journal.setSnapshotSource(() => this.engine.snapshotEntries());
    if (this.journalDamage) {
      this.commit(this.engine.settleLostTransitions(Date.now())).catch(() => undefined);
      // The journal as recovered, without what could not be applied any more.
      await this.journal.compact();
    }
    this.log(`journal: ${opened.snapshot.length > 0 ? `a snapshot of ${opened.snapshot.length} entries and ` : ""}${opened.records.length} record(s) replayed in ${(performance.now() - t0).toFixed(0)} ms`);

    const token = randomBytes(32).toString("hex");
    this.api = await startApiServer(token, this.handler(), this.log);
    this.info = {
      pid: process.pid,
      pidStart: processStartTime(process.pid),
      port: this.api.port,
      token,
      workspace: this.root,
      startedAt: Date.now(),
      version: VERSION,
    };
    const infoPath = join(this.stateDir, "runner.json");
    writeFileSync(`${infoPath}.tmp`, `${JSON.stringify(this.info, null, 2)}\n`, { mode: 0o600 });
    renameSync(`${infoPath}.tmp`, infoPath);
    this.log(`runner ${process.pid} serving ${this.root} on 127.0.0.1:${this.api.port}`);
  }

  /**
   * One runner per workspace: `.tideflow/runner.lock` holds the pid and process start
   * time of the runner that owns the state (`{"pid":…,"start":"…"}`; older runners wrote
   * the pid alone). A lock whose process is gone, a zombie, or another process that got
   * the pid since (its start time differs) is stale and taken over, saying so in the log.
   */
  private lock(): void {
    const path = join(this.stateDir, "runner.lock");
    const mine = JSON.stringify({ pid: process.pid, start: processStartTime(process.pid) });
    for (let tries = 0; tries < 3; tries++) {
      try {
        const fd = openSync(path, "wx", 0o600);
        writeSync(fd, mine);
        closeSync(fd);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const holder = readLock(path);
      if (holder && holder.pid !== process.pid && sameProcessAlive(holder.pid, holder.start)) {
        const command = processCommand(holder.pid);
        throw new RunnerRunningError(
          `a runner (pid ${holder.pid}${command ? `: ${command}` : ""}) already serves ${this.root}; ` +
            `if that process is not a Tideflow runner, stop it or delete ${path}`,
        );
      }
      if (holder) {
        const why = !processAlive(holder.pid) ? "its process is gone" : holder.pid === process.pid ? "it is this process's" : "its pid now belongs to another process";
        this.log(`runner.lock of pid ${holder.pid} is stale (${why}): taken over`);
      }
      rmSync(path, { force: true });
    }
    throw new Error(`cannot take ${path}`);
  }

  /**
   * Attempts the journal shows unended, after a crash: a shell attempt started with
   * capture files is adopted (executor `adopt`: it keeps running, its output and exit are
   * read on; an operator's pending kill is sent again); others (TS tasks, whose worker
   * died with the runner's IPC channel, and attempts of older runners) have their leftover
   * processes ended, and `recover` runs them again as failover attempts. Returns the
   * adopted attempts' markers.
   */
  private async adoptOrEndLeftovers(): Promise<Set<string>> {
    const adopted = new Set<string>();
    const rest: ReturnType<Engine["unendedAttempts"]> = [];
    for (const a of this.engine.unendedAttempts()) {
      const effect = this.engine.attemptEffect(a.instanceId, a.task, a.attempt);
      const handle = effect && handleOf(a, effect);
      const startedAt = this.engine.viewInstance(a.instanceId)?.tasks.find((t) => t.task === a.task)?.attempts[a.attempt - 1]?.startedAt;
      if (effect && handle && this.executor.adopt(effect, handle, startedAt)) {
        adopted.add(attemptMarker(a));
        this.log(`adopted ${a.task} on ${a.instanceId} attempt ${a.attempt} (${handle.executor}, process group ${handle.pid}${a.handle ? "" : ", found by its marker"})`);
        const pending = this.engine.pendingKillOf(a.instanceId, a.task, a.attempt);
        if (pending) this.executor.kill({ type: "kill", runId: a.runId, instanceId: a.instanceId, task: a.task, attempt: a.attempt, reason: pending });
      } else rest.push(a);
    }
    await this.endLeftovers(rest);
    this.executor.recovered();
    return adopted;
  }

  /** Ends every process a previous (crashed) runner left for these unended attempts. */
  private async endLeftovers(unended: ReturnType<Engine["unendedAttempts"]>): Promise<void> {
    const grace = this.options.killGraceMs ?? 5000;
    await Promise.all(
      unended.map(async (a) => {
        const marker = `${a.instanceId}/${a.task}/${a.attempt}`;
        const pids = new Set(findMarkedProcesses(marker));
        if (a.pid !== undefined && processGroupAlive(a.pid)) pids.add(a.pid);
        if (pids.size > 0) this.log(`ending ${pids.size} process(es) left running by the previous runner for ${a.task} on ${a.instanceId} attempt ${a.attempt}`);
        await Promise.all([...pids].map((pid) => killProcessGroup(pid, grace).catch(() => undefined)));
        // Marked processes outside the attempt's group (a task that called setsid).
        for (const pid of findMarkedProcesses(marker)) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // already gone
          }
        }
        const log = this.logs.open({ runId: a.runId, instanceId: a.instanceId, task: a.task, attempt: a.attempt });
        log.write("system", "ERROR", "the runner stopped while this attempt ran; its processes were ended at restart");
        await log.close();
      }),
    );
  }

  // ----------------------------------------------------------------------------------
  // The loop
  // ----------------------------------------------------------------------------------

  /** Journals a decision's records, then performs its effects and tells subscribers. */
  private commit(d: Decision): Promise<void> {
    if (this.later.length > 0) {
      d = { records: [...this.later.splice(0), ...d.records], effects: d.effects };
      clearTimeout(this.laterTimer);
      this.laterTimer = undefined;
    }
    if (d.records.length === 0 && d.effects.length === 0) return Promise.resolve();
    return this.journal.append(d.records).then(
      () => {
        for (const e of d.effects) this.perform(e);
        if (d.records.length > 0 && this.recordClients.size > 0) {
          this.api?.broadcast({ event: "records", records: d.records }, (c) => this.recordClients.has(c));
        }
      },
      (e: unknown) => {
        // Without a journal nothing may go on: stop starting work, keep what is on disk.
        this.log(`fatal: ${e instanceof Error ? e.message : String(e)}`);
        void this.stop(1);
        throw e;
      },
    );
  }

  /**
   * Journals a record nothing waits for — where an attempt's process runs — with the next
   * decision, or within `LATER_MS`: a chain of short tasks then pays one sync per task, not
   * two. Its order among the records the engine applied is kept (it goes first in the next
   * batch). If the runner dies in that window, the restarted runner finds the attempt's
   * processes by their marker instead of by the journaled pid.
   */
  private commitLater(record: EngineRecord): void {
    this.later.push(record);
    this.laterTimer ??= setTimeout(() => {
      this.laterTimer = undefined;
      this.commit({ records: [], effects: [] }).catch(() => undefined);
    }, LATER_MS);
  }

  private perform(e: Effect): void {
    switch (e.type) {
      case "start":
        // A stopping runner starts nothing; the next one recovers the attempt (retries apply).
        if (this.stopping) this.log(`not starting ${e.task} on ${e.instanceId}: the runner is stopping`);
        else this.executor.start(e);
        return;
      case "kill":
        this.executor.kill(e);
        return;
      case "wake":
        this.setWake(e.at);
        return;
    }
  }

  private setWake(at: number): void {
    if (this.wakeAt === at && this.wakeTimer) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeAt = at;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      this.wakeAt = undefined;
      if (!this.stopping) this.commit(this.engine.tick(Date.now())).catch(() => undefined);
    }, Math.max(0, Math.min(at - Date.now(), 2 ** 31 - 1)));
  }

  /** Commits an operation's result, or throws its refusal. */
  private async settle(r: OperationResult): Promise<EngineRecord[]> {
    if (!r.ok) throw refused(r);
    await this.commit(r);
    return r.records;
  }

  // ----------------------------------------------------------------------------------
  // Requests
  // ----------------------------------------------------------------------------------

  private handler(): Handler {
    return {
      "runner.status": () => this.status(),
      "runner.stop": () => {
        setImmediate(() => void this.stop(0));
        return { stopping: true };
      },
      "runs.list": (p) => this.engine.listRuns().filter((r) => !p.state || r.state === p.state),
      "runs.get": (p) => this.engine.getRun(this.runIdOf(p.run), { instances: p.instances !== false })!,
      "runs.instances": (p) => this.instancesPage(p),
      "runs.create": async (p) => ({ run: await this.createRun(p) }),
      "runs.plan": (p) => this.planRun(p),
      "task.operate": (p) => this.operate(p),
      "task.rerunDownstream": (p) => this.rerunDownstream(p),
      "logs.read": (p) => this.readLog(p),
      subscribe: (p, client) => {
        const id = this.nextSubscription++;
        const offs: (() => void)[] = [];
        if (p.records) {
          this.recordClients.add(client);
          offs.push(() => this.recordClients.delete(client));
        }
        if (p.logs) {
          const { instanceId, task, attempt } = p.logs;
          const inst = this.engine.getInstance(instanceId);
          if (!inst) throw new ApiFailure("no-instance", `no workflow instance ${instanceId}`);
          offs.push(
            this.logs.subscribe({ instanceId, task, attempt }, (key, text, end) =>
              client.push({ event: "log", subscription: id, runId: key.runId, instanceId: key.instanceId, task: key.task, attempt: key.attempt, text, end }),
            ),
          );
        }
        client.subscriptions.set(id, () => offs.forEach((off) => off()));
        return { subscription: id };
      },
      unsubscribe: (p, client) => {
        client.subscriptions.get(p.subscription)?.();
        client.subscriptions.delete(p.subscription);
        return {};
      },
    };
  }

  status(): RunnerStatus {
    const runs = this.engine.listRuns();
    return {
      pid: process.pid,
      port: this.api.port,
      workspace: this.root,
      startedAt: this.info.startedAt,
      version: VERSION,
      runs: runs.length,
      runningRuns: runs.filter((r) => r.state === "running").length,
      activeAttempts: this.executor.active(),
      journal: { records: this.journal.length, bytes: this.journal.size, ...(this.journalDamage ? { damage: this.journalDamage } : {}) },
      clients: this.api.clients.size,
    };
  }

  /**
   * The workflow file of a runs.create / runs.plan request, analyzed, and the spec for
   * the engine. The file must be inside the workspace root, symlinks resolved: the
   * runner runs its code.
   */
  private async prepare(p: CreateRunParams): Promise<{ real: string; shown: string; workflow: WorkflowModel; spec: RunSpec }> {
    const file = resolve(this.root, p.file);
    const shown = relative(this.root, file) || file;
    const outside = (what: string) =>
      new ApiFailure("outside-workspace", `${what} is outside the workspace ${this.root}; the runner runs workflow files of its workspace only`);
    if (!isInside(this.root, file)) throw outside(file);
    let real: string;
    try {
      real = realpathSync(file);
    } catch (e) {
      throw new ApiFailure("file-not-found", `${shown} does not exist${(e as NodeJS.ErrnoException).code === "ENOENT" ? "" : ` (${(e as NodeJS.ErrnoException).code})`}`);
    }
    if (!isInside(realpathSync(this.root), real)) throw outside(`${shown} resolves to ${real}, which`);
    // From here on the file is read through its real path, the one checked.
    const analysis = await this.analyzer.analyzeFile(real);
    if (!analysis.ok) throw new ApiFailure(analysis.why === "unreadable" ? "file-not-found" : "workflow-invalid", `${shown} ${analysis.reason}`);
    const errors = analysis.errors;
    if (errors.length > 0) {
      const list = errors.slice(0, 5).map((d) => `${shown}:${d.range.start.line + 1}:${d.range.start.character + 1}: ${d.message}`);
      throw new ApiFailure(
        "workflow-invalid",
        `${shown} has ${errors.length} error${errors.length > 1 ? "s" : ""}; fix ${errors.length > 1 ? "them" : "it"} first (\`tideflow check ${shown}\`):\n${list.map((l) => `  ${l}`).join("\n")}${errors.length > 5 ? "\n  …" : ""}`,
        { diagnostics: list },
      );
    }
    const workflow = analysis.workflow;
    if (!workflow) throw new ApiFailure("workflow-invalid", `${shown} has no workflow (\`export default workflow(...)\`)`);
    const spec: RunSpec = {
      kind: p.kind,
      file,
      workflow: workflow.id,
      downstream: p.downstream === true,
      ...(p.tasks && p.tasks.length > 0 ? { tasks: p.tasks } : {}),
      ...(p.bizdate !== undefined ? { bizdate: p.bizdate } : {}),
      ...(p.from !== undefined ? { from: p.from } : {}),
      ...(p.to !== undefined ? { to: p.to } : {}),
      ...(p.parallelism !== undefined ? { parallelism: p.parallelism } : {}),
      ...(p.order !== undefined ? { order: p.order } : {}),
    };
    return { real, shown, workflow, spec };
  }

  async createRun(p: CreateRunParams): Promise<Run> {
    const { real, shown, workflow, spec } = await this.prepare(p);
    this.executor.prewarm(workflow.tasks.map((t) => t.kind));
    // The run's code is frozen at creation: TS tasks run from this bundle, whatever
    // happens to the file later (reruns included).
    let pending: string | undefined;
    if (workflow.tasks.some((t) => t.kind === "task")) {
      pending = join(this.stateDir, "bundles", `pending-${randomBytes(6).toString("hex")}.cjs`);
      const bundled = await bundleWorkflow(real, pending, { root: this.root, sdkPath: this.options.sdkPath ?? join(__dirname, "sdk.js") });
      if (!bundled.ok) {
        rmSync(pending, { force: true });
        throw new ApiFailure("bundle-failed", `cannot bundle ${shown}: ${bundled.error}`);
      }
    }
    if (this.stopping) {
      if (pending) rmSync(pending, { force: true });
      throw new ApiFailure("stopping", "the runner is stopping");
    }
    const r = this.engine.createRun(spec, workflow, Date.now(), p.by);
    if (!r.ok) {
      if (pending) rmSync(pending, { force: true });
      throw refused(r);
    }
    if (pending) renameSync(pending, join(this.stateDir, "bundles", `${r.runId}.cjs`));
    await this.commit(r);
    // The live run, not a copy: the API serializes the answer at once (no I/O in between),
    // and a copy of a 100,000-instance run cost the answer half a second.
    return this.engine.viewRun(r.runId) as Run;
  }

  /** What createRun would create, through the engine's own planning; nothing is bundled, recorded or numbered. */
  async planRun(p: CreateRunParams): Promise<RunPlan> {
    const { workflow, spec } = await this.prepare(p);
    const planned = planRun(spec, workflow, Date.now());
    if (!planned.ok) throw refused(planned);
    const { draft } = planned;
    return {
      kind: draft.kind,
      file: draft.file,
      workflow: draft.workflow,
      tasks: draft.tasks.map((t) => ({ id: t.id, kind: t.kind, upstream: t.upstream })),
      instances: draft.instances.map((i) => ({ bizdate: i.bizdate, cyctime: i.cyctime })),
      parallelism: draft.parallelism,
      order: draft.order,
      total: draft.instances.length * draft.tasks.length,
    };
  }

  private instancesPage(p: InstancesPageParams): InstancesPage {
    const runId = this.runIdOf(p.run);
    const offset = p.offset ?? 0;
    const page = this.engine.instancesPage(runId, offset, p.limit ?? 100, p.state)!;
    return { runId, total: page.total, offset, instances: page.instances };
  }

  /** The id of the run `ref` names: `run-3`, `3` or `last`. */
  private runIdOf(ref: string): string {
    let id = /^\d+$/.test(ref) ? `run-${ref}` : ref;
    if (ref === "last") {
      const runs = this.engine.listRuns();
      if (runs.length === 0) throw new ApiFailure("no-run", "there are no runs yet");
      id = runs[runs.length - 1].id;
    }
    if (!this.engine.hasRun(id)) throw new ApiFailure("no-run", `no run ${ref} (see \`tideflow runs\`)`);
    return id;
  }

  /**
   * The live run, read-only, not a copy: operations, `logs` and the instance lookups only
   * read it before they act, and a copy of a 100,000-instance run costs half a second
   * (as `createRun`'s answer did).
   */
  private runOf(ref: string): Run {
    return this.engine.viewRun(this.runIdOf(ref)) as Run;
  }

  /** The workflow instances a target names: all of the run's, or those of `date` (a bizdate, a cyctime or an instance id). */
  private instancesOf(run: Run, date: string | undefined): WorkflowInstance[] {
    if (date === undefined || date === "") return run.instances;
    const found = /^\d{4}-\d{2}-\d{2}$/.test(date)
      ? run.instances.filter((i) => i.bizdate === date)
      : run.instances.filter((i) => i.id === date || i.cyctime.startsWith(date));
    if (found.length === 0) {
      const dates = [...new Set(run.instances.map((i) => i.bizdate))].sort();
      throw new ApiFailure("no-instance", `${run.id} has no workflow instance for ${date}; its bizdates are ${dates.length > 3 ? `${dates[0]} … ${dates[dates.length - 1]}` : dates.join(", ")}`);
    }
    return found;
  }

  /** Exactly one instance for a single-task operation. */
  private oneInstance(run: Run, target: Target, task: string): WorkflowInstance {
    const found = this.instancesOf(run, target.date);
    if (found.length > 1) {
      const sample = found.slice(0, 3).map((i) => (target.date ? i.cyctime : i.bizdate));
      throw new ApiFailure(
        "ambiguous-instance",
        `${run.id} has ${found.length} workflow instances${target.date ? ` for ${target.date}` : ""}; pick one with --date ` +
          `(${target.date ? "a cyctime such as" : "a bizdate such as"} ${sample.join(", ")}${found.length > 3 ? ", …" : ""})`,
        { instances: found.slice(0, 10).map((i) => i.cyctime) },
      );
    }
    if (!run.tasks.some((t) => t.id === task)) {
      throw new ApiFailure("no-task", `${run.id} did not select task \`${task}\`; its tasks are ${run.tasks.map((t) => `\`${t.id}\``).join(", ")}`);
    }
    return found[0];
  }

  async operate(p: OperateParams): Promise<OperateResult> {
    const run = this.runOf(p.run);
    const op = OPERATION[p.op].method;
    if (p.task !== undefined) {
      const inst = this.oneInstance(run, p, p.task);
      return this.describeChanges(run.id, await this.settle(this.engine[op]({ instanceId: inst.id, task: p.task }, Date.now(), p.by)));
    }
    // Batch forms on the run, or on the instances of --date: one engine decision, one
    // journal batch.
    const scope = p.date === undefined ? { runId: run.id } : { runId: run.id, instanceIds: this.instancesOf(run, p.date).map((i) => i.id) };
    const r = this.engine.operateRun(op, scope, Date.now(), p.by);
    if (!r.ok && r.code === "nothing-to-do" && op !== "kill" && op !== "rerun") {
      throw new ApiFailure("nothing-to-do", `nothing to ${p.op} in ${run.id}${p.date ? ` on ${p.date}` : ""}: no task instance is ${OPERATION_FROM[op].join(" or ")}`);
    }
    return this.describeChanges(run.id, await this.settle(r));
  }

  async rerunDownstream(p: RerunDownstreamParams): Promise<OperateResult> {
    const run = this.runOf(p.run);
    const inst = this.oneInstance(run, p, p.task);
    const r = this.engine.rerunDownstream({ instanceId: inst.id, task: p.task }, p.only && p.only.length > 0 ? p.only : "all", Date.now(), p.by);
    return this.describeChanges(run.id, await this.settle(r));
  }

  /**
   * What an operation changed, for a person: a line per task instance (the first
   * CHANGED_LINES_MAX), and counts by kind, which is what a batch on a big run prints.
   * A task named on a bizdate with several instances is named by its cyctime too.
   */
  private describeChanges(runId: string, records: EngineRecord[]): OperateResult {
    const changed: string[] = [];
    const counts: Record<string, number> = {};
    let total = 0;
    const add = (kind: string, line: () => string) => {
      counts[kind] = (counts[kind] ?? 0) + 1;
      total++;
      if (changed.length < CHANGED_LINES_MAX) changed.push(line());
    };
    const where = (instanceId: string) => {
      const inst = this.engine.viewInstance(instanceId);
      if (!inst) return instanceId;
      return this.engine.findInstances(runId, inst.bizdate).length > 1 ? `${inst.bizdate} (cyctime ${inst.cyctime})` : inst.bizdate;
    };
    for (const r of records) {
      if (r.type === "task.state" && r.cause === "operator") add(`${r.from} → ${r.to}`, () => `${r.task} on ${where(r.instanceId)}: ${r.from} → ${r.to}`);
      else if (r.type === "attempt.kill-requested") {
        add("running: being killed", () => `${r.task} on ${where(r.instanceId)}: running, attempt ${r.attempt} being killed (killed once its processes are gone)`);
      } else if (r.type === "instance.state" && r.from === "queued" && r.to === "finished") {
        add("workflow instance cancelled", () => `the workflow instance on ${where(r.instanceId)}: not started, cancelled`);
      } else if (r.type === "instance.state" && r.from === "finished" && r.to === "queued") {
        const inst = this.engine.viewInstance(r.instanceId);
        if (inst?.tasks.every((t) => t.attempts.length === 0)) add("workflow instance queued again", () => `the workflow instance on ${where(r.instanceId)}: queued again`);
      }
    }
    return { runId, changed, total, counts };
  }

  async readLog(p: LogsReadParams): Promise<LogsReadResult> {
    const run = this.runOf(p.run);
    const inst = this.oneInstance(run, p, p.task);
    const ti = inst.tasks.find((t) => t.task === p.task)!;
    if (ti.attempts.length === 0) {
      throw new ApiFailure("no-log", `\`${p.task}\` on ${inst.bizdate} has not run yet (state ${ti.state}), so it has no log`, { state: ti.state });
    }
    const n = p.attempt ?? ti.attempts.length;
    if (n > ti.attempts.length) {
      throw new ApiFailure("no-log", `\`${p.task}\` on ${inst.bizdate} has attempt${ti.attempts.length > 1 ? "s 1–" : " "}${ti.attempts.length}, not ${n}`, {
        state: ti.state,
      });
    }
    const key = { runId: run.id, instanceId: inst.id, task: p.task, attempt: n };
    const { text, size } = await this.logs.read(key, p.offset ?? 0);
    return { runId: run.id, instanceId: inst.id, task: p.task, attempt: n, state: ti.state, path: this.logs.pathFor(key), text, size };
  }

  // ----------------------------------------------------------------------------------
  // Stop
  // ----------------------------------------------------------------------------------

  /** Kills running attempts (their ends are journaled), closes clients and the journal. */
  stop(code = 0): Promise<void> {
    this.stopping ??= (async () => {
      this.log("stopping");
      // Nothing starts from here on: the attempts ended by the stop go back to waiting
      // (journaled as ended by the stop) and run again when a runner starts.
      this.engine?.halt();
      if (this.wakeTimer) clearTimeout(this.wakeTimer);
      this.api?.broadcast({ event: "stopping" });
      this.analyzer?.close();
      await this.executor?.close();
      // The exits the executor just reported are being journaled; let them finish.
      if (this.journal) await this.commit({ records: [], effects: [] }).catch(() => undefined);
      await this.journal?.append([]).catch(() => undefined);
      await this.api?.close();
      await this.journal?.close();
      const infoPath = join(this.stateDir, "runner.json");
      try {
        const info = JSON.parse(readFileSync(infoPath, "utf8")) as RunnerInfo;
        if (info.pid === process.pid) unlinkSync(infoPath);
      } catch {
        // not ours, or gone
      }
      rmSync(join(this.stateDir, "runner.lock"), { force: true });
      this.log(`stopped (${code})`);
      process.exitCode = code;
      this.resolveStopped();
    })();
    return this.stopping;
  }
}

export class RunnerRunningError extends Error {}

/** The holder of a runner.lock: `{"pid","start"}`, or a bare pid (older runners); undefined when unreadable. */
function readLock(path: string): { pid: number; start?: string } | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
  if (/^\d+$/.test(text)) return { pid: Number(text) };
  try {
    const v = JSON.parse(text) as { pid?: unknown; start?: unknown };
    if (typeof v.pid === "number" && Number.isInteger(v.pid)) return { pid: v.pid, ...(typeof v.start === "string" ? { start: v.start } : {}) };
  } catch {
    // torn or foreign: stale
  }
  return undefined;
}

/** The engine's refusal as the API answers it: the same code, sentence and states. */
function refused(r: Refusal): ApiFailure {
  return new ApiFailure(r.code, r.reason, { ...(r.state !== undefined ? { state: r.state } : {}), ...(r.allowed !== undefined ? { allowed: r.allowed } : {}) });
}

/** Whether `path` is `root` or inside it (both absolute, normalized). */
function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}
