/**
 * DAG layout benchmark: our layered layout against elkjs (layered, direction RIGHT) on
 * the same graphs, in the same process. Figures, not assertions.
 *
 * Run alone: `node --import tsx test/bench/dag.ts`.
 *
 * elkjs runs in a worker thread: its layout is synchronous JavaScript, so a slow run
 * can only be cut off from outside. Its runs are capped (one run on 1,000 nodes, and a
 * timeout) so the whole bench stays near a minute.
 */
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import type { DagGraph, DagNode } from "../../protocol/dag";
import { layoutDag, nodeWidth } from "../../server/dag/layout";
import { mulberry32 } from "./generate";

/** Deterministic PRNG, so every run lays out the same graphs. */
export const seededRandom = mulberry32;

const STEPS = ["extract", "clean", "dedupe", "join", "enrich", "aggregate", "publish", "check"];
const TABLES = ["orders", "customers", "events", "sessions", "payments", "inventory", "daily_sales_by_region"];

/**
 * Shaped like a real pipeline: tasks declared roughly in order, each reading one to
 * three of the few tasks declared just before it, some starting a new branch, and a
 * few upstreams from other workflows.
 */
export function localDag(size: number, seed = 1): DagGraph {
  const random = seededRandom(seed);
  const nodes: DagNode[] = [];
  const edges: DagGraph["edges"] = [];
  for (let i = 0; i < size; i++) {
    const external = random() < 0.05;
    const name = `${STEPS[Math.floor(random() * STEPS.length)]}_${TABLES[Math.floor(random() * TABLES.length)]}_${i}`;
    const id = external ? `upstream_flow.${name}` : name;
    nodes.push({ id, label: id, kind: external ? "external" : random() < 0.3 ? "shell" : "task" });
    if (external || i === 0 || random() < 0.08) continue;
    const parents = 1 + Math.floor(random() * 3);
    for (let p = 0; p < parents; p++) {
      const j = Math.max(0, i - 1 - Math.floor(random() * 8));
      edges.push({ from: nodes[j].id, to: id });
    }
  }
  return { workflow: `local_${size}`, nodes, edges };
}

/** Each node reads one to three nodes picked uniformly from all earlier ones. */
export function randomDag(size: number, seed = 2): DagGraph {
  const random = seededRandom(seed);
  const nodes: DagNode[] = [];
  const edges: DagGraph["edges"] = [];
  for (let i = 0; i < size; i++) {
    const id = `task_${i}`;
    nodes.push({ id, label: id, kind: random() < 0.3 ? "shell" : "task" });
    if (i === 0) continue;
    const parents = 1 + Math.floor(random() * 3);
    for (let p = 0; p < parents; p++) edges.push({ from: nodes[Math.floor(random() * i)].id, to: id });
  }
  return { workflow: `random_${size}`, nodes, edges };
}

/**
 * Mostly cycles: 3 × size edges between nodes picked uniformly. Routing every backward
 * edge through each column it spans would need millions of slots; the layout caps them.
 */
export function tangleDag(size: number, seed = 13): DagGraph {
  const random = seededRandom(seed);
  const nodes: DagNode[] = Array.from({ length: size }, (_, i) => ({ id: `t${i}`, label: `t${i}`, kind: "task" }));
  const edges = Array.from({ length: 3 * size }, () => ({
    from: nodes[Math.floor(random() * size)].id,
    to: nodes[Math.floor(random() * size)].id,
  }));
  return { workflow: `tangle_${size}`, nodes, edges };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

function timeOurs(graph: DagGraph, runs: number): { p50: number; p95: number } {
  for (let i = 0; i < 3; i++) layoutDag(graph);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    layoutDag(graph);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p95: percentile(times, 95) };
}

interface ElkGraph {
  id: string;
  layoutOptions: Record<string, string>;
  children: { id: string; width: number; height: number }[];
  edges: { id: string; sources: string[]; targets: string[] }[];
}

function toElk(graph: DagGraph): ElkGraph {
  return {
    id: "root",
    layoutOptions: { "elk.algorithm": "layered", "elk.direction": "RIGHT" },
    children: graph.nodes.map((n) => ({ id: n.id, width: nodeWidth(n.label), height: 36 })),
    edges: graph.edges.map((e, i) => ({ id: `e${i}`, sources: [e.from], targets: [e.to] })),
  };
}

const ELK_WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const { performance } = require("node:perf_hooks");
const ELK = require(workerData.elkPath);
const elk = new ELK();
parentPort.on("message", (graph) => {
  const start = performance.now();
  elk.layout(graph).then(
    () => parentPort.postMessage({ ms: performance.now() - start }),
    (error) => parentPort.postMessage({ error: String(error) }),
  );
});
`;

/** One elkjs instance in a worker; a run past its timeout ends the worker. */
class ElkRunner {
  private worker: Worker | undefined;

  async run(graph: DagGraph, timeoutMs: number): Promise<number | undefined> {
    this.worker ??= new Worker(ELK_WORKER, {
      eval: true,
      workerData: { elkPath: require.resolve("elkjs/lib/elk.bundled.js") },
    });
    const worker = this.worker;
    return new Promise<number | undefined>((resolve, reject) => {
      const timer = setTimeout(() => {
        worker.removeAllListeners("message");
        this.worker = undefined;
        void worker.terminate();
        resolve(undefined);
      }, timeoutMs);
      worker.once("message", (reply: { ms?: number; error?: string }) => {
        clearTimeout(timer);
        if (reply.error !== undefined) reject(new Error(`elkjs failed on ${graph.workflow}: ${reply.error}`));
        else resolve(reply.ms);
      });
      worker.postMessage(toElk(graph));
    });
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = undefined;
  }
}

/** Whole-bench budget for elkjs; its slowest graph gets whatever is left, up to this. */
const ELK_BUDGET_MS = 50_000;

export async function benchDag(): Promise<Record<string, unknown>[]> {
  const cases = [
    { graph: "local", nodes: 100, make: localDag, oursRuns: 50, elkRuns: 5 },
    { graph: "random", nodes: 100, make: randomDag, oursRuns: 50, elkRuns: 5 },
    { graph: "local", nodes: 1000, make: localDag, oursRuns: 15, elkRuns: 2 },
    { graph: "random", nodes: 1000, make: randomDag, oursRuns: 15, elkRuns: 1 },
    // Ours only (elkjs would spend the budget): the sizes test/unit/dag.test.ts lays out.
    { graph: "local", nodes: 2500, make: localDag, oursRuns: 5, elkRuns: 0 },
    { graph: "tangle", nodes: 2000, make: tangleDag, oursRuns: 3, elkRuns: 0 },
  ];
  const elk = new ElkRunner();
  const rows: Record<string, unknown>[] = [];
  const elkDeadline = performance.now() + ELK_BUDGET_MS;
  try {
    // Warm elkjs's code paths before timing anything.
    await elk.run(localDag(50, 9), 30_000);
    for (const c of cases) {
      const graph = c.make(c.nodes);
      const ours = timeOurs(graph, c.oursRuns);
      const elkTimes: number[] = [];
      let elkNote: string | undefined;
      for (let i = 0; i < c.elkRuns; i++) {
        const left = elkDeadline - performance.now();
        if (left < 1_000) {
          elkNote = "skipped: elk budget spent";
          break;
        }
        const ms = await elk.run(graph, left);
        if (ms === undefined) {
          elkNote = `timed out after ${Math.round(left / 1000)} s`;
          break;
        }
        elkTimes.push(ms);
      }
      elkTimes.sort((a, b) => a - b);
      rows.push({
        bench: "dag layout",
        graph: c.graph,
        nodes: c.nodes,
        edges: graph.edges.length,
        ours_p50_ms: round(ours.p50),
        ours_p95_ms: round(ours.p95),
        ours_runs: c.oursRuns,
        elk_ms: elkTimes.length > 0 ? round(percentile(elkTimes, 50)) : null,
        elk_runs: elkTimes.length,
        ...(elkNote === undefined ? {} : { note: elkNote }),
      });
    }
  } finally {
    await elk.close();
  }
  return rows;
}

if (require.main === module) {
  benchDag().then(
    (rows) => console.table(rows),
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
