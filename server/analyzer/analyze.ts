/**
 * One workflow file → its workflow model and the diagnostics that depend on it alone.
 * Pure: text in, data out. Cross-file checks live in workspace.ts.
 */
import type { TSESTree } from "@typescript-eslint/typescript-estree";
import {
  ID_PATTERN,
  SEVERITY,
  type DiagnosticCode,
  type DiagnosticFix,
  type Position,
  type FileAnalysis,
  type Range,
  type Severity,
  type TaskModel,
  type TideflowDiagnostic,
  type UpstreamRef,
  type WorkflowModel,
} from "../../protocol/model";
import { checkCron } from "../../common/cron";
import { isTimeZone } from "../../common/zone";
import { parseDuration } from "../../common/durations";
import { PARAM_NAME, paramVar } from "../../common/params";
import { describeKind, evaluate, type Property, type Value } from "./evaluate";
import { LineIndex } from "./line-index";
import { parseFile, type StatementCache } from "./parse";

type Node = TSESTree.Node;

const TASK_OPTIONS = ["upstream", "retries", "retryDelay", "timeout", "params", "description"];
const WORKFLOW_OPTIONS = ["schedule", "timezone", "concurrency", "tasks", "description", "params"];
const SDK_MODULE = "tideflow";

export interface AnalyzeOptions {
  /** Reused between versions of one open document; see parse.ts. */
  cache?: StatementCache;
  maxFileSize?: number;
}

export function analyzeFile(uri: string, text: string, options: AnalyzeOptions = {}): FileAnalysis {
  return new FileAnalyzer(uri, text, options).run();
}

interface PendingTask {
  model: TaskModel;
  call: TSESTree.CallExpression;
  /** Where the task's chunk starts in the file. */
  base: number;
}

class FileAnalyzer {
  private readonly lines: LineIndex;
  private readonly diagnostics: TideflowDiagnostic[] = [];
  /** Offset of the statement being read: estree ranges are relative to its chunk. */
  private base = 0;
  private readonly calleeNames = { task: new Set<string>(), shell: new Set<string>(), workflow: new Set<string>() };
  private readonly tasksByConst = new Map<string, PendingTask>();
  /** Where a task constant is added to the workflow's `tasks` array, and with what before it. */
  private tasksInsert: { at: Position; prefix: string } | undefined;
  /** Where each key of a params object read from this file is written. */
  private readonly paramKeys = new Map<Record<string, string>, Map<string, Range>>();
  /** Constants holding a `task(...)`/`shell(...)` whose id cannot be read statically. */
  private readonly unreadTaskConsts = new Set<string>();
  private readonly tasks: PendingTask[] = [];
  /**
   * A statement that does not parse may declare the task another one names; while the
   * file has syntax errors, such names are not reported as unknown (they are follow-ons).
   */
  private hasParseErrors = false;

  constructor(
    private readonly uri: string,
    private readonly text: string,
    private readonly options: AnalyzeOptions,
  ) {
    this.lines = new LineIndex(text);
  }

  run(): FileAnalysis {
    const limit = this.options.maxFileSize ?? Infinity;
    if (this.text.length > limit) {
      this.report(
        { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
        "file-too-large",
        SEVERITY.warning,
        `This file is ${formatBytes(this.text.length)}, over the ${formatBytes(limit)} limit (setting tideflow.maxFileSize); it is not analyzed.`,
      );
      return { uri: this.uri, tasks: [], diagnostics: this.diagnostics };
    }
    const isJs = /\.(c|m)?jsx?$/i.test(this.uri);
    const parsed = parseFile(this.text, isJs, this.options.cache);
    this.hasParseErrors = parsed.errors.length > 0;
    for (const err of parsed.errors) {
      this.report(this.lines.range(err.start, err.end), "parse-error", SEVERITY.error, err.message);
    }
    this.collectImports(parsed.statements);
    let workflowCall: { call: TSESTree.CallExpression; statement: Node; base: number } | undefined;
    const workflowConsts = new Map<string, { call: TSESTree.CallExpression; statement: Node; base: number }>();
    let defaultExport: { node: Node; base: number } | undefined;

    for (const { base, node } of parsed.statements) {
      this.base = base;
      const declaration = node.type === "ExportNamedDeclaration" ? node.declaration : node;
      if (declaration?.type === "VariableDeclaration") {
        for (const d of declaration.declarations) {
          if (d.id.type !== "Identifier" || !d.init) continue;
          const init = unwrap(d.init);
          if (init.type !== "CallExpression") continue;
          const kind = this.calleeKind(init);
          if (kind === "task" || kind === "shell") {
            const pending = this.readTask(init, kind, node, d.id.name);
            if (pending) this.tasksByConst.set(d.id.name, pending);
            else this.unreadTaskConsts.add(d.id.name);
          } else if (kind === "workflow") {
            workflowConsts.set(d.id.name, { call: init, statement: node, base });
          }
        }
      } else if (node.type === "ExportDefaultDeclaration") {
        defaultExport = { node, base };
      }
    }

    if (defaultExport) {
      this.base = defaultExport.base;
      const decl = defaultExport.node.type === "ExportDefaultDeclaration" ? unwrap(defaultExport.node.declaration as Node) : defaultExport.node;
      if (decl.type === "CallExpression" && this.calleeKind(decl) === "workflow") {
        workflowCall = { call: decl, statement: defaultExport.node, base: defaultExport.base };
      } else if (decl.type === "Identifier" && workflowConsts.has(decl.name)) {
        workflowCall = workflowConsts.get(decl.name);
      }
    }

    let workflow: WorkflowModel | undefined;
    if (workflowCall) {
      this.base = workflowCall.base;
      workflow = this.readWorkflow(workflowCall.call, workflowCall.statement);
      // One workflow per file (SPEC §1): any other `workflow(...)` constant is a second one.
      for (const [name, other] of workflowConsts) {
        if (other.call === workflowCall.call) continue;
        this.base = other.base;
        this.report(
          this.range(other.call.arguments[0] ?? other.call),
          "duplicate-workflow",
          SEVERITY.error,
          `\`${name}\` is a second \`workflow(...)\` in this file; a workflow file holds one workflow, its default export${workflow ? ` (\`${workflow.id}\`)` : ""}: move \`${name}\` to a file of its own.`,
        );
      }
    } else if (parsed.errors.length === 0) {
      const hint = workflowConsts.size > 0
        ? ` \`${[...workflowConsts.keys()][0]}\` is a workflow but not the default export: add \`export default ${[...workflowConsts.keys()][0]};\`.`
        : " Add `export default workflow(\"my_workflow\", { tasks: [...] });`.";
      this.report(
        this.lines.range(0, Math.min(this.text.indexOf("\n") === -1 ? this.text.length : this.text.indexOf("\n"), 200)),
        "missing-workflow",
        SEVERITY.error,
        `A workflow file must default-export a \`workflow(...)\`.${hint}`,
      );
    }

    // Upstreams can be resolved only once every task of the file is known.
    const allTasks = this.tasks.map((t) => t.model);
    const localIds = new Set(allTasks.map((t) => t.id));
    for (const t of this.tasks) {
      this.base = t.base;
      this.resolveUpstreams(t, localIds);
    }
    this.checkDuplicates(allTasks);
    for (const t of this.tasks) {
      if (workflow && !t.model.listed) {
        const name = t.model.constName;
        const insert = this.tasksInsert;
        this.report(
          t.model.idRange,
          "task-not-in-workflow",
          SEVERITY.warning,
          `Task \`${t.model.id}\` is not listed in the \`tasks\` of workflow \`${workflow.id}\`, so it never runs.`,
          name && insert
            ? { title: `Add \`${name}\` to the tasks of workflow \`${workflow.id}\``, edits: [{ range: { start: insert.at, end: insert.at }, newText: `${insert.prefix}${name}` }] }
            : undefined,
        );
      }
    }
    if (workflow) workflow.tasks = allTasks.filter((t) => t.listed);
    // A task's params override the workflow's by name; a different spelling of one variable would clash.
    if (workflow?.params) {
      const wfByVar = new Map(Object.keys(workflow.params).map((k) => [paramVar(k), k]));
      for (const t of allTasks) {
        if (!t.params) continue;
        for (const [key, range] of this.paramKeys.get(t.params) ?? []) {
          const other = wfByVar.get(paramVar(key));
          if (other !== undefined && other !== key) this.paramClash(range, other, key);
        }
      }
    }
    return { uri: this.uri, workflow, tasks: allTasks, diagnostics: this.diagnostics };
  }

  private collectImports(statements: { node: Node }[]): void {
    let importedAny = false;
    for (const { node } of statements) {
      if (node.type !== "ImportDeclaration" || node.source.value !== SDK_MODULE) continue;
      for (const spec of node.specifiers) {
        if (spec.type !== "ImportSpecifier") continue;
        const imported = spec.imported.type === "Identifier" ? spec.imported.name : String(spec.imported.value);
        if (imported === "task" || imported === "shell" || imported === "workflow") {
          this.calleeNames[imported].add(spec.local.name);
          importedAny = true;
        }
      }
    }
    // Files without the import (plain .flow.js, or half-typed ones) use the SDK's names.
    if (!importedAny) {
      this.calleeNames.task.add("task");
      this.calleeNames.shell.add("shell");
      this.calleeNames.workflow.add("workflow");
    }
  }

  private calleeKind(call: TSESTree.CallExpression): "task" | "shell" | "workflow" | undefined {
    if (call.callee.type !== "Identifier") return undefined;
    const name = call.callee.name;
    if (this.calleeNames.task.has(name)) return "task";
    if (this.calleeNames.shell.has(name)) return "shell";
    if (this.calleeNames.workflow.has(name)) return "workflow";
    return undefined;
  }

  private readTask(call: TSESTree.CallExpression, kind: "task" | "shell", statement: Node, constName?: string): PendingTask | undefined {
    const args = call.arguments;
    const id = this.readId(args[0], call, kind);
    if (id === undefined) return undefined;
    const model: TaskModel = {
      id: id.value,
      kind,
      idRange: id.range,
      constName,
      range: this.range(statement),
      calleeRange: this.range(call.callee),
      upstream: [],
      listed: false,
    };
    let optionsNode: Node | undefined;
    let bodyNode: Node | undefined;
    if (args.length >= 3) {
      optionsNode = args[1];
      bodyNode = args[2];
    } else if (args.length === 2) {
      const second = evaluate(args[1]);
      if (second.kind === "object") optionsNode = args[1];
      else bodyNode = args[1];
    }
    if (args.length > 3) {
      this.report(this.range(args[3]), "invalid-option", SEVERITY.error, `\`${kind}(id, options, ${kind === "task" ? "fn" : "command"})\` takes at most 3 arguments, got ${args.length}.`);
    }
    if (!bodyNode) {
      this.report(this.range(call), "invalid-option", SEVERITY.error, kind === "task"
        ? `Task \`${model.id}\` needs a function as its last argument: \`task("${model.id}", async (ctx) => { ... })\`.`
        : `Shell task \`${model.id}\` needs a command as its last argument: \`shell("${model.id}", "echo $BIZDATE")\`.`);
    } else if (kind === "shell") {
      const body = evaluate(bodyNode);
      if (body.kind === "string") model.command = body.value;
      else if (body.kind === "dynamic" || body.kind === "identifier" || body.kind === "call") this.notStatic(body, "the command");
      else this.report(this.range(bodyNode), "invalid-option", SEVERITY.error, `A shell task's command must be a string, got ${describeKind(body)}.`);
    } else {
      const body = evaluate(bodyNode);
      if (body.kind !== "function" && body.kind !== "identifier" && body.kind !== "call" && body.kind !== "dynamic") {
        this.report(this.range(bodyNode), "invalid-option", SEVERITY.error, `A task's body must be a function, got ${describeKind(body)}.`);
      }
    }
    const pending: PendingTask = { model, call, base: this.base };
    if (optionsNode) this.readTaskOptions(pending, evaluate(optionsNode));
    this.tasks.push(pending);
    return pending;
  }

  /** Raw upstream values, resolved in resolveUpstreams once all tasks are known. */
  private readonly rawUpstreams = new Map<PendingTask, Value[]>();

  private readTaskOptions(task: PendingTask, options: Value): void {
    if (options.kind !== "object") {
      if (options.kind === "dynamic" || options.kind === "identifier" || options.kind === "call") this.notStatic(options, "the options");
      else this.report(this.range(options.node), "invalid-option", SEVERITY.error, `Task options must be an object, got ${describeKind(options)}.`);
      return;
    }
    const m = task.model;
    for (const p of options.props) {
      const v = p.value;
      switch (p.key) {
        case "upstream":
          if (v.kind === "array") this.rawUpstreams.set(task, v.items);
          else this.expect(p, "an array of tasks", v);
          break;
        case "retries":
          if (v.kind === "number" && Number.isInteger(v.value) && v.value >= 0) m.retries = v.value;
          else this.expect(p, "a whole number, 0 or more", v);
          break;
        case "retryDelay":
        case "timeout": {
          const ms = this.readDuration(p);
          if (ms !== undefined) {
            if (p.key === "timeout") m.timeoutMs = ms;
            else m.retryDelayMs = ms;
          }
          break;
        }
        case "params": {
          const params = this.readParams(p);
          if (params) m.params = params;
          break;
        }
        case "description":
          if (v.kind === "string") m.description = v.value;
          else this.expect(p, "a string", v);
          break;
        default:
          this.unknownKey(p, TASK_OPTIONS, "task");
      }
    }
  }

  private readWorkflow(call: TSESTree.CallExpression, statement: Node): WorkflowModel | undefined {
    const id = this.readId(call.arguments[0], call, "workflow");
    if (!id) return undefined;
    const model: WorkflowModel = {
      id: id.value,
      idRange: id.range,
      range: this.range(statement),
      calleeRange: this.range(call.callee),
      tasks: [],
    };
    const optionsNode = call.arguments[1];
    if (!optionsNode) {
      this.report(this.range(call), "invalid-option", SEVERITY.error, `Workflow \`${model.id}\` needs options with its tasks: \`workflow("${model.id}", { tasks: [...] })\`.`);
      return model;
    }
    const options = evaluate(optionsNode);
    if (options.kind !== "object") {
      if (options.kind === "dynamic" || options.kind === "identifier" || options.kind === "call") this.notStatic(options, "the workflow options");
      else this.report(this.range(optionsNode), "invalid-option", SEVERITY.error, `Workflow options must be an object, got ${describeKind(options)}.`);
      return model;
    }
    let scheduleProp: Property | undefined;
    let sawTasks = false;
    for (const p of options.props) {
      const v = p.value;
      switch (p.key) {
        case "schedule":
          if (v.kind === "string") {
            model.schedule = v.value;
            model.scheduleRange = this.range(v.node);
            scheduleProp = p;
          } else this.expect(p, "a cron expression string", v);
          break;
        case "timezone":
          if (v.kind === "string") {
            if (isTimeZone(v.value)) {
              model.timezone = v.value;
              model.timezoneRange = this.range(v.node);
            } else {
              this.report(this.range(v.node), "invalid-timezone", SEVERITY.error, `\`${v.value}\` is not an IANA time zone (e.g. "Asia/Shanghai", "Europe/Berlin", "UTC").`);
            }
          } else this.expect(p, "an IANA time zone string", v);
          break;
        case "concurrency":
          if (v.kind === "number" && Number.isInteger(v.value) && v.value >= 1) model.concurrency = v.value;
          else this.expect(p, "a whole number, 1 or more", v);
          break;
        case "description":
          if (v.kind === "string") model.description = v.value;
          else this.expect(p, "a string", v);
          break;
        case "params": {
          const params = this.readParams(p);
          if (params) model.params = params;
          break;
        }
        case "tasks":
          sawTasks = true;
          if (v.kind === "array") {
            this.readTaskList(v.items);
            // Where a missing task constant goes (the quick fix of task-not-in-workflow).
            const last = v.items[v.items.length - 1];
            this.tasksInsert = last
              ? { at: this.range(last.node).end, prefix: ", " }
              : { at: { line: this.range(v.node).start.line, character: this.range(v.node).start.character + 1 }, prefix: "" };
          } else this.expect(p, "an array of tasks", v);
          break;
        default:
          this.unknownKey(p, WORKFLOW_OPTIONS, "workflow");
      }
    }
    if (!sawTasks) {
      this.report(this.range(optionsNode), "invalid-option", SEVERITY.error, `Workflow \`${model.id}\` has no \`tasks\` list.`);
    }
    if (scheduleProp && model.schedule !== undefined) {
      // Checked after the loop so that the timezone is known wherever it is written.
      const why = checkCron(model.schedule, model.timezone);
      if (why) {
        this.report(this.range(scheduleProp.value.node), "invalid-cron", SEVERITY.error, `Invalid cron \`${model.schedule}\`: ${why}.`);
        model.schedule = undefined;
      }
    }
    return model;
  }

  private readTaskList(items: Value[]): void {
    for (const item of items) {
      if (item.kind === "identifier") {
        const t = this.tasksByConst.get(item.name);
        if (t) t.model.listed = true;
        else if (this.unreadTaskConsts.has(item.name)) this.unreadTaskConst(item.node, item.name, "this entry of `tasks`");
        else if (!this.hasParseErrors) {
          this.report(
            this.range(item.node),
            "invalid-option",
            SEVERITY.error,
            `An entry of \`tasks\` must be a task constant of this file, and \`${item.name}\` is not one (declare it as \`export const ${item.name} = task("…", …)\` or \`shell("…", …)\`).`,
          );
        }
      } else if (item.kind === "call") {
        const kind = this.calleeKind(item.node);
        if (kind === "task" || kind === "shell") {
          const t = this.readTask(item.node, kind, item.node);
          if (t) t.model.listed = true;
        } else this.notStatic(item, "this entry of `tasks`");
      } else if (item.kind === "dynamic") {
        this.notStatic(item, "this entry of `tasks`");
      } else {
        this.report(this.range(item.node), "invalid-option", SEVERITY.error, `An entry of \`tasks\` must be a task constant, got ${describeKind(item)}.`);
      }
    }
  }

  private resolveUpstreams(task: PendingTask, localIds: ReadonlySet<string>): void {
    const items = this.rawUpstreams.get(task) ?? [];
    for (const item of items) {
      const range = this.range(item.node);
      if (item.kind === "identifier") {
        const target = this.tasksByConst.get(item.name);
        if (!target) {
          if (this.unreadTaskConsts.has(item.name)) this.unreadTaskConst(item.node, item.name, "this upstream");
          else if (!this.hasParseErrors) this.report(range, "unknown-upstream", SEVERITY.error, `Upstream \`${item.name}\` is not a task constant of this file.`);
          continue;
        }
        task.model.upstream.push({ task: target.model.id, form: "identifier", range, taskRange: range });
      } else if (item.kind === "string") {
        const ref = this.stringRef(item, range);
        if (!ref) continue;
        if (ref.workflow === undefined && !localIds.has(ref.task)) {
          if (this.hasParseErrors) continue;
          const hint = closest(ref.task, [...localIds]);
          this.report(
            range,
            "unknown-upstream",
            SEVERITY.error,
            `Upstream \`${ref.task}\` names no task of this workflow.${hint ? ` Did you mean \`${hint}\`?` : ""}`,
            hint ? { title: `Change to \`${hint}\``, edits: [{ range: ref.taskRange, newText: hint }] } : undefined,
          );
          continue;
        }
        task.model.upstream.push(ref);
      } else if (item.kind === "dynamic" || item.kind === "call") {
        this.notStatic(item, "this upstream");
      } else {
        this.report(range, "invalid-option", SEVERITY.error, `An upstream must be a task constant, "task_id" or "workflow_id.task_id", got ${describeKind(item)}.`);
      }
    }
  }

  private stringRef(item: Extract<Value, { kind: "string" }>, range: Range): UpstreamRef | undefined {
    const raw = item.value;
    const dot = raw.indexOf(".");
    const workflow = dot === -1 ? undefined : raw.slice(0, dot);
    const taskId = dot === -1 ? raw : raw.slice(dot + 1);
    if ((workflow !== undefined && !ID_PATTERN.test(workflow)) || !ID_PATTERN.test(taskId)) {
      this.report(range, "invalid-id", SEVERITY.error, `Upstream ${JSON.stringify(raw)} is not "task_id" or "workflow_id.task_id" (ids match ${ID_PATTERN.source}).`);
      return undefined;
    }
    // The task part sits after the opening quote and the `workflow.` prefix, when the
    // literal is written plainly (no escapes), which is the case we can rename in place.
    const [start] = this.offsets(item.node);
    const literal = this.text.slice(start + 1, start + 1 + raw.length);
    const taskStart = start + 1 + (dot === -1 ? 0 : dot + 1);
    const taskRange = literal === raw ? this.lines.range(taskStart, taskStart + taskId.length) : range;
    return { task: taskId, workflow, form: "string", range, taskRange };
  }

  private checkDuplicates(tasks: TaskModel[]): void {
    const byId = new Map<string, TaskModel[]>();
    for (const t of tasks) {
      const same = byId.get(t.id);
      if (same) same.push(t);
      else byId.set(t.id, [t]);
    }
    for (const [id, same] of byId) {
      if (same.length < 2) continue;
      for (const t of same) {
        const others = same.filter((o) => o !== t).map((o) => `line ${o.idRange.start.line + 1}`);
        this.report(t.idRange, "duplicate-task", SEVERITY.error, `Task id \`${id}\` is used more than once in this workflow (also on ${others.join(", ")}).`);
      }
    }
  }

  /** `name` holds a task whose id cannot be read: what refers to it is not checked either. */
  private unreadTaskConst(node: Node, name: string, what: string): void {
    this.report(
      this.range(node),
      "not-static",
      SEVERITY.information,
      `\`${name}\` is a task constant of this file whose id Tideflow cannot read statically, so ${what} is not checked; write its id as a string literal.`,
    );
  }

  private readId(node: Node | undefined, call: TSESTree.CallExpression, what: string): { value: string; range: Range } | undefined {
    if (!node) {
      this.report(this.range(call), "invalid-id", SEVERITY.error, `\`${what}(...)\` needs an id as its first argument.`);
      return undefined;
    }
    const v = evaluate(node);
    const range = this.range(node);
    if (v.kind !== "string") {
      if (v.kind === "dynamic" || v.kind === "identifier" || v.kind === "call") this.notStatic(v, `this ${what} id`);
      else this.report(range, "invalid-id", SEVERITY.error, `A ${what} id must be a string literal, got ${describeKind(v)}.`);
      return undefined;
    }
    if (!ID_PATTERN.test(v.value)) {
      this.report(range, "invalid-id", SEVERITY.error, `${capitalize(what)} id ${JSON.stringify(v.value)} is not valid: ids start with a letter or \`_\` and contain only letters, digits, \`_\` and \`-\`.`);
    }
    return { value: v.value, range };
  }

  private readDuration(p: Property): number | undefined {
    const v = p.value;
    if (v.kind === "number") {
      if (v.value >= 0 && Number.isFinite(v.value)) return v.value;
      this.report(this.range(v.node), "invalid-duration", SEVERITY.error, `\`${p.key}\` must not be negative, got ${v.value}.`);
      return undefined;
    }
    if (v.kind === "string") {
      const ms = parseDuration(v.value);
      if (ms !== undefined) return ms;
      this.report(this.range(v.node), "invalid-duration", SEVERITY.error, `\`${p.key}\` ${JSON.stringify(v.value)} is not a duration: use e.g. "500ms", "30s", "10m", "2h", "1h30m" or a number of milliseconds.`);
      return undefined;
    }
    if (v.kind === "dynamic" || v.kind === "identifier" || v.kind === "call") this.notStatic(v, `\`${p.key}\``);
    else this.report(this.range(v.node), "invalid-duration", SEVERITY.error, `\`${p.key}\` must be a duration string or a number of milliseconds, got ${describeKind(v)}.`);
    return undefined;
  }

  private readParams(p: Property): Record<string, string> | undefined {
    const v = p.value;
    if (v.kind !== "object") {
      this.expect(p, "an object of strings", v);
      return undefined;
    }
    const out: Record<string, string> = {};
    const keys = new Map<string, Range>();
    this.paramKeys.set(out, keys);
    const byVar = new Map<string, string>();
    for (const entry of v.props) {
      const keyRange = this.range(entry.keyNode);
      keys.set(entry.key, keyRange);
      if (!PARAM_NAME.test(entry.key)) {
        this.report(
          keyRange,
          "invalid-option",
          SEVERITY.error,
          `Param name ${JSON.stringify(entry.key)} is not one a shell task can see as $${paramVar(entry.key)}: names start with a letter or \`_\` and hold letters, digits, \`_\` and \`-\`.`,
        );
      }
      const other = byVar.get(paramVar(entry.key));
      if (other !== undefined && other !== entry.key) this.paramClash(keyRange, other, entry.key);
      byVar.set(paramVar(entry.key), entry.key);
      if (entry.value.kind === "string") out[entry.key] = entry.value.value;
      else if (entry.value.kind === "dynamic" || entry.value.kind === "identifier" || entry.value.kind === "call") this.notStatic(entry.value, `param \`${entry.key}\``);
      else this.report(this.range(entry.value.node), "invalid-option", SEVERITY.error, `Param \`${entry.key}\` must be a string, got ${describeKind(entry.value)}.`);
    }
    return out;
  }

  /** Two param names that are one environment variable: the second is reported. */
  private paramClash(range: Range, first: string, second: string): void {
    this.report(
      range,
      "invalid-option",
      SEVERITY.error,
      `Params \`${first}\` and \`${second}\` are both $${paramVar(second)} in a shell task's environment: rename one.`,
    );
  }

  private expect(p: Property, expected: string, got: Value): void {
    if (got.kind === "dynamic" || got.kind === "identifier" || got.kind === "call") {
      this.notStatic(got, `\`${p.key}\``);
      return;
    }
    this.report(this.range(got.node), "invalid-option", SEVERITY.error, `\`${p.key}\` must be ${expected}, got ${describeKind(got)}.`);
  }

  private unknownKey(p: Property, known: string[], owner: string): void {
    const hint = closest(p.key, known);
    const keyRange = this.range(p.keyNode);
    this.report(
      keyRange,
      "invalid-option",
      SEVERITY.error,
      `Unknown ${owner} option \`${p.key}\`${hint ? `; did you mean \`${hint}\`?` : ""} (known: ${known.join(", ")}).`,
      // A quoted key keeps its quotes: only the name inside changes.
      hint ? { title: `Change to \`${hint}\``, edits: [{ range: p.keyNode.type === "Literal" ? inner(keyRange) : keyRange, newText: hint }] } : undefined,
    );
  }

  private notStatic(v: Value, what: string): void {
    const why = v.kind === "dynamic" ? v.why : v.kind === "identifier" ? `it refers to \`${v.name}\`` : "it is computed by a call";
    this.report(this.range(v.node), "not-static", SEVERITY.information, `Tideflow cannot read ${what} statically (${why}), so it is not checked.`);
  }

  private report(range: Range, code: DiagnosticCode, severity: Severity, message: string, fix?: DiagnosticFix): void {
    this.diagnostics.push({ range, code, severity, message, ...(fix ? { fix } : {}) });
  }

  private offsets(node: Node): [number, number] {
    return [this.base + node.range[0], this.base + node.range[1]];
  }

  private range(node: Node): Range {
    const [s, e] = this.offsets(node);
    return this.lines.range(s, e);
  }
}

function unwrap(node: Node): Node {
  let n = node;
  while (n.type === "TSAsExpression" || n.type === "TSSatisfiesExpression" || n.type === "TSNonNullExpression") n = n.expression;
  return n;
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function formatBytes(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MB` : `${Math.round(n / 1024)} KB`;
}

/** The candidate within edit distance 2 (or a third of the length), if any. */
/** A one-line string literal's range without its quotes. */
function inner(r: Range): Range {
  return { start: { line: r.start.line, character: r.start.character + 1 }, end: { line: r.end.line, character: r.end.character - 1 } };
}

export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDist = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    if (Math.abs(c.length - word.length) >= bestDist) continue;
    const d = editDistance(word, c, bestDist);
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string, cap: number): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      rowMin = Math.min(rowMin, cur[j]);
    }
    if (rowMin >= cap) return cap;
    prev = cur;
  }
  return prev[b.length];
}
