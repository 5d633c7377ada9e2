/**
 * DAG layout and SVG rendering, tested on properties a reader of the picture relies
 * on: boxes do not overlap, edges run left to right between box sides and never
 * through another box, bad input (cycles, unknown ids, duplicates) still draws.
 *
 * Run: `node --import tsx --test test/unit/dag.test.ts`.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { DagGraph, DagLayout, DagNode, LaidOutNode, Point } from "../../protocol/dag";
import { layoutDag } from "../../server/dag/layout";
import { renderDagSvg, STATE_COLORS } from "../../server/dag/svg";
import { localDag, randomDag, tangleDag } from "../bench/dag";

/** The layout's goal for 1,000 nodes is 1 s; 5 s leaves room for a busy machine. */
const BUDGET_MS = 5_000;
/** Hang guard, not a speed test: speed is in npm run bench / BENCHMARKS.md. */
const HANG_GUARD_MS = 10 * BUDGET_MS;

function task(id: string, kind: DagNode["kind"] = "task"): DagNode {
  return { id, label: id, kind };
}

function graphOf(edges: [string, string][], extraNodes: string[] = []): DagGraph {
  const ids = new Set<string>(extraNodes);
  for (const [from, to] of edges) ids.add(from).add(to);
  return {
    workflow: "wf",
    nodes: [...ids].sort().map((id) => task(id)),
    edges: edges.map(([from, to]) => ({ from, to })),
  };
}

function byId(layout: DagLayout): Map<string, LaidOutNode> {
  return new Map(layout.nodes.map((n) => [n.id, n]));
}

function overlaps(a: LaidOutNode, b: LaidOutNode): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

function assertNoOverlap(layout: DagLayout): void {
  // Sorting by x lets each box be compared only with boxes that start before it ends.
  const boxes = [...layout.nodes].sort((a, b) => a.x - b.x);
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length && boxes[j].x < boxes[i].x + boxes[i].width; j++) {
      assert.ok(!overlaps(boxes[i], boxes[j]), `${boxes[i].id} overlaps ${boxes[j].id}`);
    }
  }
}

/** Does segment p→q pass through the inside of the box (Liang–Barsky clipping)? */
function segmentEntersBox(p: Point, q: Point, box: LaidOutNode): boolean {
  const inset = 0.5;
  const [xmin, xmax, ymin, ymax] = [box.x + inset, box.x + box.width - inset, box.y + inset, box.y + box.height - inset];
  let t0 = 0;
  let t1 = 1;
  const dx = q.x - p.x;
  const dy = q.y - p.y;
  const clips: [number, number][] = [
    [-dx, p.x - xmin],
    [dx, xmax - p.x],
    [-dy, p.y - ymin],
    [dy, ymax - p.y],
  ];
  for (const [denominator, numerator] of clips) {
    if (denominator === 0) {
      if (numerator < 0) return false;
    } else {
      const t = numerator / denominator;
      if (denominator < 0) t0 = Math.max(t0, t);
      else t1 = Math.min(t1, t);
    }
  }
  return t0 < t1;
}

function assertEdgesWellRouted(layout: DagLayout): void {
  const nodes = byId(layout);
  for (const edge of layout.edges) {
    const source = nodes.get(edge.from);
    const target = nodes.get(edge.to);
    assert.ok(source && target, `edge ${edge.from} → ${edge.to} names laid-out nodes`);
    const first = edge.points[0];
    const last = edge.points[edge.points.length - 1];
    assert.ok(edge.points.length >= 2, `edge ${edge.from} → ${edge.to} has at least two points`);
    assert.deepEqual(first, { x: source.x + source.width, y: source.y + source.height / 2 }, "starts right-middle");
    assert.deepEqual(last, { x: target.x, y: target.y + target.height / 2 }, "ends left-middle");
    for (const point of edge.points) {
      assert.ok(point.x >= 0 && point.x <= layout.width && point.y >= 0 && point.y <= layout.height, "inside bounds");
    }
    for (let i = 1; i < edge.points.length; i++) {
      for (const box of layout.nodes) {
        assert.ok(
          !segmentEntersBox(edge.points[i - 1], edge.points[i], box),
          `edge ${edge.from} → ${edge.to} runs through ${box.id}`,
        );
      }
    }
  }
}

function assertForwardEdges(layout: DagLayout): void {
  const nodes = byId(layout);
  for (const edge of layout.edges) {
    const from = nodes.get(edge.from)!;
    const to = nodes.get(edge.to)!;
    assert.ok(from.layer < to.layer, `${edge.from} (layer ${from.layer}) before ${edge.to} (layer ${to.layer})`);
    assert.ok(from.x + from.width < to.x, `${edge.from} box is left of ${edge.to} box`);
    for (let i = 1; i < edge.points.length; i++) {
      assert.ok(edge.points[i].x >= edge.points[i - 1].x, `${edge.from} → ${edge.to} never runs leftwards`);
    }
  }
}

function assertBoxesInside(layout: DagLayout): void {
  for (const n of layout.nodes) {
    assert.ok(n.width > 0 && n.height > 0, `${n.id} has a size`);
    assert.ok(n.x >= 0 && n.y >= 0 && n.x + n.width <= layout.width && n.y + n.height <= layout.height, `${n.id} inside`);
  }
}

/** Tags nest and close, text has no raw `<` or stray `&`: enough for the SVG we write. */
function assertWellFormed(xml: string): void {
  const stack: string[] = [];
  const tokens = xml.split(/(<[^>]*>)/);
  let roots = 0;
  for (const token of tokens) {
    if (token.startsWith("<")) {
      const tag = /^<(\/?)([A-Za-z][\w:-]*)[^>]*?(\/?)>$/.exec(token);
      assert.ok(tag, `tag is well-formed: ${token.slice(0, 80)}`);
      const [, closing, name, selfClosing] = tag;
      const attributes = token.slice(name.length + 1 + closing.length, token.length - 1 - selfClosing.length);
      assert.doesNotMatch(attributes, /&(?!(amp|lt|gt|quot|apos);)/, `attributes escape &: ${token.slice(0, 80)}`);
      assert.equal((attributes.match(/"/g) ?? []).length % 2, 0, `attribute quotes balance: ${token.slice(0, 80)}`);
      if (closing) assert.equal(stack.pop(), name, `</${name}> closes the open element`);
      else if (!selfClosing) {
        if (stack.length === 0) roots++;
        stack.push(name);
      } else if (stack.length === 0) roots++;
    } else {
      assert.doesNotMatch(token, /&(?!(amp|lt|gt|quot|apos);)/, `text escapes &: ${token.slice(0, 80)}`);
    }
  }
  assert.deepEqual(stack, [], "every element is closed");
  assert.equal(roots, 1, "one root element");
}

const pipeline: DagGraph = {
  workflow: "daily_sales",
  nodes: [
    task("other_flow.customers", "external"),
    task("extract_orders", "shell"),
    task("extract_customers"),
    task("clean_orders"),
    task("join"),
    task("aggregate_daily_sales_by_region_and_channel_with_a_very_long_name"),
    task("report", "shell"),
    task("notify"),
    task("standalone"),
  ],
  edges: [
    { from: "extract_orders", to: "clean_orders" },
    { from: "clean_orders", to: "join" },
    { from: "extract_customers", to: "join" },
    { from: "other_flow.customers", to: "join" },
    { from: "join", to: "aggregate_daily_sales_by_region_and_channel_with_a_very_long_name" },
    { from: "aggregate_daily_sales_by_region_and_channel_with_a_very_long_name", to: "report" },
    { from: "join", to: "report" },
    { from: "report", to: "notify" },
    { from: "extract_orders", to: "notify" },
  ],
};

describe("layoutDag", () => {
  test("gives every node one box, in input order, inside the layout", () => {
    const layout = layoutDag(pipeline);
    assert.equal(layout.workflow, "daily_sales");
    assert.deepEqual(
      layout.nodes.map((n) => [n.id, n.label, n.kind]),
      pipeline.nodes.map((n) => [n.id, n.label, n.kind]),
    );
    assert.equal(layout.edges.length, pipeline.edges.length);
    assertBoxesInside(layout);
    assertNoOverlap(layout);
  });

  test("puts sources left of what they feed and routes every edge between box sides", () => {
    const layout = layoutDag(pipeline);
    assertForwardEdges(layout);
    assertEdgesWellRouted(layout);
    const nodes = byId(layout);
    assert.equal(nodes.get("extract_orders")!.layer, 0);
    // An external upstream sits just before its consumer, not at the far left.
    assert.equal(nodes.get("other_flow.customers")!.layer, nodes.get("join")!.layer - 1);
  });

  test("routes an edge spanning several layers through its own slots", () => {
    const layout = layoutDag(pipeline);
    const nodes = byId(layout);
    const long = layout.edges.find((e) => e.from === "extract_orders" && e.to === "notify")!;
    const span = nodes.get("notify")!.layer - nodes.get("extract_orders")!.layer;
    assert.ok(span >= 3, `the edge spans ${span} layers`);
    // Two points per layer crossed, plus at most two at each end.
    assert.ok(long.points.length >= 2 * (span - 1) + 2, `${long.points.length} points`);
  });

  test("widens boxes with their labels, within limits", () => {
    const nodes = byId(layoutDag(pipeline));
    const short = nodes.get("join")!;
    const medium = nodes.get("extract_customers")!;
    const huge = nodes.get("aggregate_daily_sales_by_region_and_channel_with_a_very_long_name")!;
    assert.ok(short.width > 0 && short.width <= medium.width && medium.width < huge.width);
    assert.ok(huge.width < 400, `a very long label is capped, got ${huge.width}`);
    assert.equal(short.height, huge.height);
  });

  test("lays out pipeline-like and random long-range DAGs cleanly", () => {
    for (const graph of [localDag(150, 3), randomDag(150, 4), randomDag(60, 5)]) {
      const layout = layoutDag(graph);
      assert.equal(layout.nodes.length, graph.nodes.length);
      assert.equal(layout.edges.length, new Set(graph.edges.map((e) => `${e.from}\n${e.to}`)).size);
      assertBoxesInside(layout);
      assertNoOverlap(layout);
      assertForwardEdges(layout);
      assertEdgesWellRouted(layout);
    }
  });

  test("is deterministic and leaves its input alone", () => {
    const graph = randomDag(120, 7);
    const copy = structuredClone(graph);
    const first = layoutDag(graph);
    assert.deepEqual(graph, copy);
    assert.deepEqual(layoutDag(copy), first);
  });

  test("terminates on cycles and self-loops and still draws every edge", () => {
    const graph = graphOf([
      ["a", "b"],
      ["b", "c"],
      ["c", "a"],
      ["c", "d"],
      ["d", "d"],
      ["x", "y"],
      ["y", "x"],
    ]);
    const layout = layoutDag(graph);
    assert.equal(layout.nodes.length, 6);
    assert.deepEqual(
      layout.edges.map((e) => `${e.from}->${e.to}`),
      graph.edges.map((e) => `${e.from}->${e.to}`),
    );
    assertBoxesInside(layout);
    assertNoOverlap(layout);
    assertEdgesWellRouted(layout);
    const nodes = byId(layout);
    // With one cycle edge turned around, the rest still flows left to right.
    const forward = layout.edges.filter((e) => nodes.get(e.from)!.layer < nodes.get(e.to)!.layer);
    assert.ok(forward.length >= 4, `${forward.length} edges run forwards`);
  });

  test("terminates on a graph that is one big cycle", () => {
    const size = 500;
    const ids = Array.from({ length: size }, (_, i) => `n${i}`);
    const graph: DagGraph = {
      workflow: "ring",
      nodes: ids.map((id) => task(id)),
      edges: ids.map((id, i) => ({ from: id, to: ids[(i + 1) % size] })),
    };
    const layout = layoutDag(graph);
    assert.equal(layout.edges.length, size);
    assertNoOverlap(layout);
    for (const edge of layout.edges.slice(-3)) assert.ok(edge.points.length >= 2);
  });

  test("stays bounded on a large graph made mostly of cycles", () => {
    const graph = tangleDag(2000);
    const { edges } = graph;
    const layout = layoutDag(graph);
    // Each edge slot (dummy) gives an edge at most two points, and each edge has at most 8
    // others; the slots are capped at 150,000 (MAX_DUMMIES, layout.ts), every later phase
    // works over them. This graph would need millions (its time is in npm run bench).
    const points = layout.edges.reduce((sum, edge) => sum + edge.points.length, 0);
    assert.ok(points <= 2 * 150_000 + 8 * edges.length, `${points} edge points for ${edges.length} edges`);
    assert.equal(layout.edges.length, new Set(edges.map((e) => `${e.from}\n${e.to}`)).size);
    assertNoOverlap(layout);
    const laidOut = byId(layout);
    for (const edge of layout.edges) {
      const source = laidOut.get(edge.from)!;
      const target = laidOut.get(edge.to)!;
      assert.deepEqual(edge.points[0], { x: source.x + source.width, y: source.y + source.height / 2 });
      assert.deepEqual(edge.points.at(-1), { x: target.x, y: target.y + target.height / 2 });
    }
  });

  test("ignores edges naming unknown nodes, and repeated nodes and edges", () => {
    const graph: DagGraph = {
      workflow: "wf",
      nodes: [task("a"), task("b"), { id: "a", label: "again", kind: "shell" }],
      edges: [
        { from: "a", to: "b" },
        { from: "a", to: "ghost" },
        { from: "other.flow", to: "b" },
        { from: "a", to: "b" },
      ],
    };
    const layout = layoutDag(graph);
    assert.deepEqual(
      layout.nodes.map((n) => [n.id, n.label]),
      [
        ["a", "a"],
        ["b", "b"],
      ],
    );
    assert.deepEqual(
      layout.edges.map((e) => [e.from, e.to]),
      [["a", "b"]],
    );
    assertEdgesWellRouted(layout);
  });

  test("gives an empty graph a small positive size", () => {
    const layout = layoutDag({ workflow: "empty", nodes: [], edges: [{ from: "a", to: "b" }] });
    assert.deepEqual(layout.nodes, []);
    assert.deepEqual(layout.edges, []);
    assert.ok(layout.width > 0 && layout.width < 200 && layout.height > 0 && layout.height < 200);
  });

  test("stacks disconnected components and lone nodes without overlap", () => {
    const graph = graphOf(
      [
        ["a1", "a2"],
        ["a2", "a3"],
        ["b1", "b2"],
        ["c1", "c3"],
        ["c2", "c3"],
      ],
      ["lone1", "lone2", "lone3"],
    );
    const layout = layoutDag(graph);
    assert.equal(layout.nodes.length, 11);
    assertNoOverlap(layout);
    assertForwardEdges(layout);
    assertEdgesWellRouted(layout);
    for (const id of ["lone1", "lone2", "lone3"]) assert.equal(byId(layout).get(id)!.layer, 0);
  });

  test("lays out 1,000- and 2,500-node graphs", () => {
    for (const graph of [randomDag(1000, 11), localDag(2500, 12)]) {
      const start = performance.now();
      const layout = layoutDag(graph);
      const ms = performance.now() - start;
      assert.ok(ms < HANG_GUARD_MS, `${graph.workflow} took ${Math.round(ms)} ms`);
      assert.equal(layout.nodes.length, graph.nodes.length);
      assertNoOverlap(layout);
      assertForwardEdges(layout);
    }
  });
});

describe("renderDagSvg", () => {
  const hostile = `<script>alert("x")</script>&'`;
  const hostileGraph: DagGraph = {
    workflow: `wf ${hostile}`,
    nodes: [
      { id: hostile, label: hostile, kind: "task" },
      { id: "other.flow", label: "other.flow", kind: "external" },
      { id: "run", label: "run", kind: "shell" },
      { id: "bell\u0007", label: "bell\u0007", kind: "task" },
    ],
    edges: [
      { from: "other.flow", to: hostile },
      { from: hostile, to: "run" },
      { from: "run", to: "bell\u0007" },
    ],
  };

  test("is a standalone SVG document sized to the layout", () => {
    const layout = layoutDag(pipeline);
    const svg = renderDagSvg(layout);
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" /);
    assert.match(svg, new RegExp(`width="${layout.width}" height="${layout.height}" viewBox="0 0 ${layout.width} ${layout.height}"`));
    assert.match(svg, /<rect class="background"[^>]*fill="#/);
    assert.match(svg, /<marker id="tideflow-arrow"/);
    assert.equal(svg.match(/<g class="node /g)?.length, layout.nodes.length);
    assert.equal(svg.match(/<path class="edge"/g)?.length, layout.edges.length);
    assertWellFormed(svg);
  });

  test("escapes every user-supplied string", () => {
    const svg = renderDagSvg(layoutDag(hostileGraph), { title: hostile, states: { [hostile]: `"><script>` } });
    assert.doesNotMatch(svg, /<script/i);
    assert.doesNotMatch(svg, /\u0007/);
    assert.match(svg, /data-id="&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt;&amp;&apos;"/);
    assert.match(svg, /<title>&lt;script&gt;/);
    assert.equal(svg.match(/<g class="node /g)?.length, hostileGraph.nodes.length);
    assertWellFormed(svg);
  });

  test("marks kinds: external dashed, tags for task and shell", () => {
    const svg = renderDagSvg(layoutDag(hostileGraph));
    const group = (id: string) => new RegExp(`<g class="[^"]*" data-id="${id}"[^>]*>.*?</g>`).exec(svg)?.[0] ?? "";
    assert.match(group("other\\.flow"), /stroke-dasharray/);
    assert.match(group("other\\.flow"), /kind-external/);
    assert.match(group("run"), />sh</);
    assert.doesNotMatch(group("run"), /stroke-dasharray/);
    assert.match(group("bell"), />ts</);
  });

  test("colours nodes by state and falls back for unknown states", () => {
    const layout = layoutDag(pipeline);
    const states: Record<string, string> = {
      extract_orders: "success",
      clean_orders: "running",
      join: "failed",
      report: "made_up",
    };
    const svg = renderDagSvg(layout, { states });
    const group = (id: string) => new RegExp(`<g class="[^"]*" data-id="${id}"[^>]*>.*?</g>`).exec(svg)?.[0] ?? "";
    assert.match(group("extract_orders"), new RegExp(`fill="${STATE_COLORS.success.fill}" stroke="${STATE_COLORS.success.stroke}"`));
    assert.match(group("join"), new RegExp(`stroke="${STATE_COLORS.failed.stroke}"`));
    assert.match(group("clean_orders"), /class="node kind-task state-running" data-id="clean_orders" data-state="running"/);
    assert.match(group("report"), /data-state="made_up"/);
    assert.doesNotMatch(group("notify"), /data-state/);
    const palettes = Object.values(STATE_COLORS).map((p) => p.stroke);
    assert.equal(new Set(palettes).size, palettes.length, "every state has its own colour");
    assertWellFormed(svg);
  });

  test("truncates labels too long for their box and keeps the full one in a tooltip", () => {
    const id = "aggregate_daily_sales_by_region_and_channel_with_a_very_long_name";
    const svg = renderDagSvg(layoutDag(pipeline));
    const label = new RegExp(`data-id="${id}".*?<text class="label"[^>]*>([^<]*)</text>`).exec(svg)?.[1];
    assert.ok(label && label.endsWith("…") && label.length < id.length, `label drawn as ${label}`);
    assert.match(svg, new RegExp(`<title>${id}</title>`));
  });

  test("renders an empty layout and a title", () => {
    const svg = renderDagSvg(layoutDag({ workflow: "empty", nodes: [], edges: [] }), { title: "Nothing & nobody" });
    assert.match(svg, /<text class="title"[^>]*>Nothing &amp; nobody<\/text>/);
    assert.doesNotMatch(svg, /<g class="node /);
    assertWellFormed(svg);
  });
});
