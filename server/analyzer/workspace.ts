/**
 * Every workflow file of a workspace and the checks that span files: duplicate workflow
 * ids, `workflow.task` upstreams, and dependency cycles (within or across workflows).
 * Pure: callers feed it analyses and ask for diagnostics, graphs and references.
 */
import type { DagGraph } from "../../protocol/dag";
import {
  SEVERITY,
  type FileAnalysis,
  type Position,
  type Range,
  type TaskModel,
  type TideflowDiagnostic,
  type UpstreamRef,
} from "../../protocol/model";
import { closest } from "./analyze";
import { containsPosition } from "./line-index";

/** A task with the file that holds it. */
export interface TaskHandle {
  file: FileAnalysis;
  task: TaskModel;
  /** `workflow.task`, or `uri#task` in a file without a workflow. */
  key: string;
}

export interface Reference {
  uri: string;
  /** The whole literal or identifier. */
  range: Range;
  /** Just the task id inside it. */
  taskRange: Range;
  form: "declaration" | "string" | "identifier";
}

interface Edge {
  from: string;
  to: string;
  /** The upstream entry that makes the edge: where a cycle is reported. */
  ref: UpstreamRef;
  uri: string;
}

export class WorkspaceIndex {
  private readonly files = new Map<string, FileAnalysis>();
  private derived: Derived | undefined;

  set(analysis: FileAnalysis): void {
    this.files.set(analysis.uri, analysis);
    this.derived = undefined;
  }

  delete(uri: string): boolean {
    const had = this.files.delete(uri);
    if (had) this.derived = undefined;
    return had;
  }

  get(uri: string): FileAnalysis | undefined {
    return this.files.get(uri);
  }

  has(uri: string): boolean {
    return this.files.has(uri);
  }

  all(): IterableIterator<FileAnalysis> {
    return this.files.values();
  }

  get size(): number {
    return this.files.size;
  }

  /** The file that owns a workflow id (the first by URI when the id is duplicated). */
  workflowFile(id: string): FileAnalysis | undefined {
    return this.state().owners.get(id);
  }

  /** Local and cross-file diagnostics of one file. */
  diagnostics(uri: string): TideflowDiagnostic[] {
    const file = this.files.get(uri);
    if (!file) return [];
    const cross = this.state().cross.get(uri);
    return cross ? [...file.diagnostics, ...cross] : file.diagnostics;
  }

  /** The task an upstream entry of `file` names, if it exists. */
  resolve(file: FileAnalysis, ref: UpstreamRef): TaskHandle | undefined {
    return resolveRef(this.state().owners, file, ref);
  }

  /** Tasks that list `target` as an upstream, across the workspace. */
  downstream(target: TaskHandle): TaskHandle[] {
    return this.state().downstream.get(target.key) ?? [];
  }

  upstream(target: TaskHandle): TaskHandle[] {
    const out: TaskHandle[] = [];
    for (const ref of target.task.upstream) {
      const h = this.resolve(target.file, ref);
      if (h) out.push(h);
    }
    return out;
  }

  /** The task whose id, or an upstream naming it, is under the cursor. */
  taskAt(uri: string, position: Position): { target: TaskHandle; at: Reference } | undefined {
    const file = this.files.get(uri);
    if (!file) return undefined;
    for (const task of file.tasks) {
      if (containsPosition(task.idRange, position)) {
        return { target: handle(file, task), at: declaration(file, task) };
      }
      for (const ref of task.upstream) {
        if (!containsPosition(ref.range, position)) continue;
        const target = this.resolve(file, ref);
        if (!target) return undefined;
        return { target, at: { uri, range: ref.range, taskRange: ref.taskRange, form: ref.form } };
      }
    }
    return undefined;
  }

  /** The declaration of `target` and every upstream entry that names it. */
  references(target: TaskHandle): Reference[] {
    const out: Reference[] = [declaration(target.file, target.task)];
    for (const file of this.files.values()) {
      for (const task of file.tasks) {
        for (const ref of task.upstream) {
          if (ref.task !== target.task.id) continue;
          const h = this.resolve(file, ref);
          if (h && h.key === target.key) out.push({ uri: file.uri, range: ref.range, taskRange: ref.taskRange, form: ref.form });
        }
      }
    }
    return out;
  }

  /** A workflow's tasks and edges; upstreams in other workflows become external nodes. */
  graph(workflowId: string): DagGraph | undefined {
    const file = this.workflowFile(workflowId);
    const wf = file?.workflow;
    if (!file || !wf) return undefined;
    const nodes: DagGraph["nodes"] = wf.tasks.map((t) => ({ id: t.id, label: t.id, kind: t.kind }));
    const known = new Set(nodes.map((n) => n.id));
    const edges: DagGraph["edges"] = [];
    for (const t of wf.tasks) {
      for (const ref of t.upstream) {
        const target = this.resolve(file, ref);
        if (!target) continue;
        let from = target.task.id;
        if (target.file !== file) {
          from = target.key;
          if (!known.has(from)) {
            known.add(from);
            nodes.push({ id: from, label: from, kind: "external" });
          }
        }
        if (known.has(from)) edges.push({ from, to: t.id });
      }
    }
    return { workflow: wf.id, nodes, edges };
  }

  private state(): Derived {
    this.derived ??= derive([...this.files.values()].sort((a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0)));
    return this.derived;
  }
}

export function taskKey(file: FileAnalysis, task: TaskModel): string {
  return file.workflow ? `${file.workflow.id}.${task.id}` : `${file.uri}#${task.id}`;
}

function resolveRef(owners: Map<string, FileAnalysis>, file: FileAnalysis, ref: UpstreamRef): TaskHandle | undefined {
  const targetFile = ref.workflow === undefined || ref.workflow === file.workflow?.id ? file : owners.get(ref.workflow);
  if (!targetFile) return undefined;
  const task = targetFile === file
    ? file.tasks.find((t) => t.id === ref.task)
    : targetFile.workflow?.tasks.find((t) => t.id === ref.task);
  return task ? handle(targetFile, task) : undefined;
}

function handle(file: FileAnalysis, task: TaskModel): TaskHandle {
  return { file, task, key: taskKey(file, task) };
}

function declaration(file: FileAnalysis, task: TaskModel): Reference {
  const r = task.idRange;
  // Inside the quotes, when the literal sits on one line as written.
  const inner = r.start.line === r.end.line && r.end.character - r.start.character === task.id.length + 2
    ? { start: { line: r.start.line, character: r.start.character + 1 }, end: { line: r.end.line, character: r.end.character - 1 } }
    : r;
  return { uri: file.uri, range: r, taskRange: inner, form: "declaration" };
}

interface Derived {
  owners: Map<string, FileAnalysis>;
  cross: Map<string, TideflowDiagnostic[]>;
  downstream: Map<string, TaskHandle[]>;
}

function derive(files: FileAnalysis[]): Derived {
  const owners = new Map<string, FileAnalysis>();
  const byWorkflow = new Map<string, FileAnalysis[]>();
  for (const f of files) {
    if (!f.workflow) continue;
    const id = f.workflow.id;
    if (!owners.has(id)) owners.set(id, f);
    const same = byWorkflow.get(id);
    if (same) same.push(f);
    else byWorkflow.set(id, [f]);
  }
  const cross = new Map<string, TideflowDiagnostic[]>();
  const add = (uri: string, d: TideflowDiagnostic) => {
    const list = cross.get(uri);
    if (list) list.push(d);
    else cross.set(uri, [d]);
  };

  for (const [id, same] of byWorkflow) {
    if (same.length < 2) continue;
    for (const f of same) {
      const others = same.filter((o) => o !== f).map((o) => basename(o.uri));
      add(f.uri, {
        range: f.workflow!.idRange,
        severity: SEVERITY.error,
        code: "duplicate-workflow",
        message: `Workflow id \`${id}\` is also defined in ${others.join(", ")}; workflow ids must be unique in the workspace.`,
      });
    }
  }

  // Edges of the workspace graph, and upstreams naming other workflows checked here
  // because only the index knows those workflows.
  const edges: Edge[] = [];
  const downstream = new Map<string, TaskHandle[]>();
  const workflowIds = [...owners.keys()];
  for (const f of files) {
    for (const task of f.tasks) {
      const me = handle(f, task);
      for (const ref of task.upstream) {
        const target = resolveRef(owners, f, ref);
        if (!target) {
          if (ref.workflow !== undefined) add(f.uri, unknownQualified(ref, owners, workflowIds));
          continue;
        }
        // Only the owner of a duplicated workflow id takes part in the graph.
        if (f.workflow && owners.get(f.workflow.id) !== f) continue;
        edges.push({ from: target.key, to: me.key, ref, uri: f.uri });
        const list = downstream.get(target.key);
        if (list) list.push(me);
        else downstream.set(target.key, [me]);
      }
    }
  }
  for (const d of findCycles(edges)) add(d.uri, d.diagnostic);
  return { owners, cross, downstream };
}

function unknownQualified(ref: UpstreamRef, owners: Map<string, FileAnalysis>, workflowIds: string[]): TideflowDiagnostic {
  const wf = ref.workflow!;
  const owner = owners.get(wf);
  let message: string;
  let fix: TideflowDiagnostic["fix"];
  if (!owner?.workflow) {
    const hint = closest(wf, workflowIds);
    message = `Upstream \`${wf}.${ref.task}\`: no workflow \`${wf}\` in the workspace.${hint ? ` Did you mean \`${hint}\`?` : ""}`;
    // The workflow part: from after the opening quote to the dot before the task id.
    const start = { line: ref.range.start.line, character: ref.range.start.character + 1 };
    const end = { line: ref.taskRange.start.line, character: ref.taskRange.start.character - 1 };
    if (hint && start.line === end.line && end.character - start.character === wf.length) fix = { title: `Change to \`${hint}.${ref.task}\``, edits: [{ range: { start, end }, newText: hint }] };
  } else {
    const hint = closest(ref.task, owner.workflow.tasks.map((t) => t.id));
    message = `Upstream \`${wf}.${ref.task}\`: workflow \`${wf}\` (${basename(owner.uri)}) has no task \`${ref.task}\`.${hint ? ` Did you mean \`${hint}\`?` : ""}`;
    if (hint) fix = { title: `Change to \`${wf}.${hint}\``, edits: [{ range: ref.taskRange, newText: hint }] };
  }
  return { range: ref.range, severity: SEVERITY.error, code: "unknown-upstream", message, ...(fix ? { fix } : {}) };
}

/**
 * One cycle per strongly connected component (Tarjan, iterative so that deep chains
 * cannot overflow the stack), reported on each upstream entry along it. Fixing one
 * cycle reveals the next, as compilers do.
 */
function findCycles(edges: Edge[]): { uri: string; diagnostic: TideflowDiagnostic }[] {
  const out = new Map<string, Edge[]>();
  for (const e of edges) {
    const list = out.get(e.from);
    if (list) list.push(e);
    else out.set(e.from, [e]);
  }
  const nodes = new Set<string>();
  for (const e of edges) {
    nodes.add(e.from);
    nodes.add(e.to);
  }
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let counter = 0;
  for (const root of nodes) {
    if (indexOf.has(root)) continue;
    const work: { node: string; next: number }[] = [{ node: root, next: 0 }];
    indexOf.set(root, counter);
    low.set(root, counter++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const succ = out.get(frame.node) ?? [];
      if (frame.next < succ.length) {
        const to = succ[frame.next++].to;
        if (!indexOf.has(to)) {
          indexOf.set(to, counter);
          low.set(to, counter++);
          stack.push(to);
          onStack.add(to);
          work.push({ node: to, next: 0 });
        } else if (onStack.has(to)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, indexOf.get(to)!));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].node;
        low.set(parent, Math.min(low.get(parent)!, low.get(frame.node)!));
      }
      if (low.get(frame.node) === indexOf.get(frame.node)) {
        const comp: string[] = [];
        let n: string;
        do {
          n = stack.pop()!;
          onStack.delete(n);
          comp.push(n);
        } while (n !== frame.node);
        const selfLoop = comp.length === 1 && (out.get(comp[0]) ?? []).some((e) => e.to === comp[0]);
        if (comp.length > 1 || selfLoop) components.push(comp);
      }
    }
  }

  const diagnostics: { uri: string; diagnostic: TideflowDiagnostic }[] = [];
  for (const comp of components) {
    const members = new Set(comp);
    const cycle = shortestCycle(comp[0], members, out);
    const workflows = new Set(cycle.map((e) => e.from.split(".")[0]));
    const name = (key: string) =>
      key.includes("#") ? key.slice(key.lastIndexOf("#") + 1) : workflows.size > 1 ? key : key.slice(key.indexOf(".") + 1);
    const names = cycle.map((e) => name(e.from));
    for (let i = 0; i < cycle.length; i++) {
      const path = spellCycle(names, i);
      const e = cycle[i];
      diagnostics.push({
        uri: e.uri,
        diagnostic: {
          range: e.ref.range,
          severity: SEVERITY.error,
          code: "cycle",
          message: `Dependency cycle: ${path}.`,
        },
      });
    }
  }
  return diagnostics;
}

/** Long cycles keep their ends and say how many steps are left out. */
const MAX_PATH_NAMES = 12;

/** The cycle `names` read from position `start` back to itself, `a → b → c → a`. */
function spellCycle(names: string[], start: number): string {
  const n = names.length;
  const at = (k: number) => names[(start + k) % n];
  // n + 1 names in all: the start comes back at the end.
  if (n + 1 <= MAX_PATH_NAMES) return Array.from({ length: n + 1 }, (_, k) => at(k)).join(" → ");
  const head = Array.from({ length: MAX_PATH_NAMES - 3 }, (_, k) => at(k));
  const tail = [at(n - 1), at(n)];
  return [...head, `… ${n + 1 - head.length - tail.length} more …`, ...tail].join(" → ");
}

/** Breadth-first from `start` back to itself inside one component: the edges in order. */
function shortestCycle(start: string, members: Set<string>, out: Map<string, Edge[]>): Edge[] {
  const via = new Map<string, Edge>();
  const queue = [start];
  for (let qi = 0; qi < queue.length; qi++) {
    const node = queue[qi];
    for (const e of out.get(node) ?? []) {
      if (!members.has(e.to)) continue;
      if (e.to === start) {
        const path = [e];
        for (let n = node; n !== start; n = via.get(n)!.from) path.push(via.get(n)!);
        return path.reverse();
      }
      if (!via.has(e.to)) {
        via.set(e.to, e);
        queue.push(e.to);
      }
    }
  }
  return [];
}

export function basename(uri: string): string {
  return uri.slice(uri.lastIndexOf("/") + 1);
}
