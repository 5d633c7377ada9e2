/**
 * Layered (Sugiyama-style) layout of a workflow DAG, left to right. Pure and
 * deterministic: the same graph always gives the same coordinates.
 *
 * Why not a library: elkjs and dagre take seconds to tens of seconds on 1,000-node
 * graphs with long-range edges (notes/dependencies.md); the goals are 50 ms for 100
 * nodes and 1 s for 1,000. The phases here are each near-linear in nodes + dummies:
 *
 *   1. cycle breaking: DFS back edges are reversed for layering only;
 *   2. longest-path layering, sources then pulled next to their first consumer;
 *   3. dummy nodes on every layer an edge crosses, so edges get their own slot in each
 *      column and never run through a box (up to a cap, for graphs of mostly cycles);
 *   4. a bounded number of barycenter sweeps, keeping the order with fewest crossings;
 *   5. vertical placement: each column is placed as close as possible to its
 *      neighbours' centres under the ordering and spacing constraints (an isotonic
 *      regression, solved exactly in linear time by pool-adjacent-violators).
 */
import {
  KIND_TAG_WIDTH,
  LABEL_CHAR_WIDTH,
  LABEL_PADDING_X,
  MAX_NODE_WIDTH,
  MIN_NODE_WIDTH,
  NODE_HEIGHT,
  type DagGraph,
  type DagLayout,
  type DagNode,
  type LaidOutEdge,
  type LaidOutNode,
  type Point,
} from "../../protocol/dag";

export { KIND_TAG_WIDTH, LABEL_CHAR_WIDTH, LABEL_PADDING_X, MAX_NODE_WIDTH, MIN_NODE_WIDTH, NODE_HEIGHT };

const LAYER_GAP = 72;
/** Gap between two boxes in one column. */
const ROW_GAP = 16;
/** Gap around an edge's slot (a dummy) in a column; edges pack tighter than boxes. */
const EDGE_SLOT_GAP = 8;
const MARGIN = 24;
/** How far right/left of a column a backward edge turns; must stay below MARGIN. */
const TURN_OFFSET = 14;

/** Barycenter sweeps stop once they would do more than this many node visits. */
const ORDERING_BUDGET = 2_000_000;
/**
 * Most edge slots (dummies) to create. Real workflows stay far below it; a graph made
 * mostly of cycles can need millions (every backward edge takes a slot in each column
 * it spans), so past this the longest edges are drawn straight instead, over boxes.
 */
const MAX_DUMMIES = 150_000;
const MAX_SWEEPS = 12;
const PLACEMENT_PASSES = 6;

export function nodeWidth(label: string): number {
  const text = Math.ceil(label.length * LABEL_CHAR_WIDTH + 2 * LABEL_PADDING_X + KIND_TAG_WIDTH);
  return Math.min(MAX_NODE_WIDTH, Math.max(MIN_NODE_WIDTH, text));
}

export function layoutDag(graph: DagGraph): DagLayout {
  // Duplicate node ids keep their first declaration; the analyzer reports the rest.
  const index = new Map<string, number>();
  const nodes: DagNode[] = [];
  for (const node of graph.nodes) {
    if (!index.has(node.id)) {
      index.set(node.id, nodes.length);
      nodes.push(node);
    }
  }
  const n = nodes.length;
  if (n === 0) {
    return { workflow: graph.workflow, width: 2 * MARGIN, height: 2 * MARGIN, nodes: [], edges: [] };
  }

  // Edges naming unknown nodes cannot be drawn; repeated edges are drawn once.
  const edgeFrom: number[] = [];
  const edgeTo: number[] = [];
  const seenEdges = new Set<number>();
  for (const edge of graph.edges) {
    const from = index.get(edge.from);
    const to = index.get(edge.to);
    if (from === undefined || to === undefined) continue;
    const key = from * n + to;
    if (seenEdges.has(key)) continue;
    seenEdges.add(key);
    edgeFrom.push(from);
    edgeTo.push(to);
  }
  const m = edgeFrom.length;

  const reversed = findBackEdges(n, edgeFrom, edgeTo);
  const layer = assignLayers(n, edgeFrom, edgeTo, reversed);
  const g = buildLayeredGraph(n, layer, edgeFrom, edgeTo, reversed);
  orderLayers(g);
  const centerY = placeVertically(g);

  // Columns: boxes are centred in a column as wide as its widest box.
  const widths = nodes.map((node) => nodeWidth(node.label));
  const layerCount = g.layers.length;
  const columnWidth = new Array<number>(layerCount).fill(0);
  for (let v = 0; v < n; v++) columnWidth[layer[v]] = Math.max(columnWidth[layer[v]], widths[v]);
  const columnX = new Array<number>(layerCount);
  let x = MARGIN;
  for (let l = 0; l < layerCount; l++) {
    columnX[l] = x;
    x += columnWidth[l] + LAYER_GAP;
  }
  const width = x - LAYER_GAP + MARGIN;

  let top = Infinity;
  let bottom = -Infinity;
  for (let v = 0; v < g.size; v++) {
    const half = v < n ? NODE_HEIGHT / 2 : 0;
    top = Math.min(top, centerY[v] - half);
    bottom = Math.max(bottom, centerY[v] + half);
  }
  // Rounding moves a centre by at most half a pixel, far less than any gap.
  const shift = MARGIN - top;
  for (let v = 0; v < g.size; v++) centerY[v] = Math.round(centerY[v] + shift);
  const height = Math.round(bottom + shift) + MARGIN;

  const laidOutNodes: LaidOutNode[] = nodes.map((node, v) => ({
    ...node,
    x: columnX[layer[v]] + Math.floor((columnWidth[layer[v]] - widths[v]) / 2),
    y: centerY[v] - NODE_HEIGHT / 2,
    width: widths[v],
    height: NODE_HEIGHT,
    layer: layer[v],
  }));

  const columnRight = (l: number) => columnX[l] + columnWidth[l];
  const edges: LaidOutEdge[] = [];
  for (let e = 0; e < m; e++) {
    const source = laidOutNodes[edgeFrom[e]];
    const target = laidOutNodes[edgeTo[e]];
    const sourceY = source.y + NODE_HEIGHT / 2;
    const targetY = target.y + NODE_HEIGHT / 2;
    const chain = g.chains[e];
    const backward = reversed[e] || edgeFrom[e] === edgeTo[e];
    const points: Point[] = [];
    const push = (px: number, py: number) => {
      const last = points[points.length - 1];
      if (last === undefined || last.x !== px || last.y !== py) points.push({ x: px, y: py });
    };
    push(source.x + source.width, sourceY);
    push(columnRight(source.layer), sourceY);
    if (chain === undefined) {
      if (backward) {
        push(columnRight(source.layer) + TURN_OFFSET, sourceY);
        push(columnX[target.layer] - TURN_OFFSET, targetY);
      }
    } else if (!backward) {
      for (const d of chain) {
        push(columnX[g.layer[d]], centerY[d]);
        push(columnRight(g.layer[d]), centerY[d]);
      }
    } else {
      // A backward edge or self-loop: its chain has one slot in every column from the
      // target's to the source's, ordered left to right. It turns in the margin right
      // of the source column, runs leftwards through the slots, and turns back into
      // the target from the left, so it never crosses a box either.
      const turnRight = columnRight(source.layer) + TURN_OFFSET;
      const first = chain[chain.length - 1];
      push(turnRight, sourceY);
      push(turnRight, centerY[first]);
      for (let i = chain.length - 1; i >= 0; i--) {
        const d = chain[i];
        push(columnRight(g.layer[d]), centerY[d]);
        push(columnX[g.layer[d]], centerY[d]);
      }
      const turnLeft = columnX[target.layer] - TURN_OFFSET;
      push(turnLeft, centerY[chain[0]]);
      push(turnLeft, targetY);
    }
    push(columnX[target.layer], targetY);
    push(target.x, targetY);
    edges.push({ from: nodes[edgeFrom[e]].id, to: nodes[edgeTo[e]].id, points });
  }

  return { workflow: graph.workflow, width, height, nodes: laidOutNodes, edges };
}

/**
 * Marks the edges to reverse so the rest is acyclic: the back edges of an iterative
 * DFS (recursion would overflow on long chains). Roots are taken sources first, then
 * in declaration order, so in `a → b → c → b` it is `c → b` that turns around, not
 * `a → b`. Self-loops are back edges too; layering ignores them.
 */
function findBackEdges(n: number, edgeFrom: number[], edgeTo: number[]): boolean[] {
  const m = edgeFrom.length;
  const out = csr(n, edgeFrom);
  const inDegree = new Int32Array(n);
  for (let e = 0; e < m; e++) if (edgeFrom[e] !== edgeTo[e]) inDegree[edgeTo[e]]++;

  const reversed = new Array<boolean>(m).fill(false);
  // 0 unvisited, 1 on the DFS stack, 2 finished.
  const state = new Uint8Array(n);
  const stackNode = new Int32Array(n);
  const stackNext = new Int32Array(n);
  const visit = (root: number) => {
    let depth = 0;
    stackNode[0] = root;
    stackNext[0] = out.start[root];
    state[root] = 1;
    while (depth >= 0) {
      const v = stackNode[depth];
      if (stackNext[depth] === out.start[v + 1]) {
        state[v] = 2;
        depth--;
        continue;
      }
      const e = out.items[stackNext[depth]++];
      const w = edgeTo[e];
      if (state[w] === 1) reversed[e] = true;
      else if (state[w] === 0) {
        state[w] = 1;
        depth++;
        stackNode[depth] = w;
        stackNext[depth] = out.start[w];
      }
    }
  };
  for (let v = 0; v < n; v++) if (inDegree[v] === 0 && state[v] === 0) visit(v);
  for (let v = 0; v < n; v++) if (state[v] === 0) visit(v);
  return reversed;
}

/**
 * Longest path from the sources, then every source that feeds something moves right
 * to just before its earliest consumer: an external upstream of a deep task then sits
 * beside it instead of in column 0 with a long edge across the graph.
 */
function assignLayers(n: number, edgeFrom: number[], edgeTo: number[], reversed: boolean[]): Int32Array {
  const lower: number[] = [];
  const upper: number[] = [];
  for (let e = 0; e < edgeFrom.length; e++) {
    if (edgeFrom[e] === edgeTo[e]) continue;
    lower.push(reversed[e] ? edgeTo[e] : edgeFrom[e]);
    upper.push(reversed[e] ? edgeFrom[e] : edgeTo[e]);
  }
  const out = csr(n, lower);
  const inDegree = new Int32Array(n);
  for (const v of upper) inDegree[v]++;
  const isSource = inDegree.map((d) => (d === 0 ? 1 : 0));

  const layer = new Int32Array(n);
  const queue = new Int32Array(n);
  let head = 0;
  let tail = 0;
  for (let v = 0; v < n; v++) if (inDegree[v] === 0) queue[tail++] = v;
  while (head < tail) {
    const v = queue[head++];
    for (let i = out.start[v]; i < out.start[v + 1]; i++) {
      const w = upper[out.items[i]];
      if (layer[v] + 1 > layer[w]) layer[w] = layer[v] + 1;
      if (--inDegree[w] === 0) queue[tail++] = w;
    }
  }

  for (let v = 0; v < n; v++) {
    if (!isSource[v] || out.start[v] === out.start[v + 1]) continue;
    let nearest = Infinity;
    for (let i = out.start[v]; i < out.start[v + 1]; i++) nearest = Math.min(nearest, layer[upper[out.items[i]]]);
    layer[v] = nearest - 1;
  }
  return layer;
}

/**
 * Real nodes and dummies ("vertices"), each in one layer, joined only between
 * adjacent layers. Vertices 0..n-1 are the real nodes.
 */
interface LayeredGraph {
  size: number;
  realCount: number;
  layer: number[];
  /** Vertex ids per layer, in the current top-to-bottom order. */
  layers: number[][];
  /** Index of each vertex within its layer; kept in step with `layers`. */
  position: Int32Array;
  up: Csr;
  down: Csr;
  /**
   * For the end slots of a backward edge or self-loop, the real node in the same layer
   * they hang from (the slot stays just below it); -1 otherwise.
   */
  anchor: Int32Array;
  /** Per input edge, its dummy vertices ordered by layer; undefined past MAX_DUMMIES. */
  chains: (number[] | undefined)[];
}

function buildLayeredGraph(
  n: number,
  nodeLayer: Int32Array,
  edgeFrom: number[],
  edgeTo: number[],
  reversed: boolean[],
): LayeredGraph {
  const layer = Array.from(nodeLayer);
  const anchorList: number[] = new Array<number>(n).fill(-1);
  const segmentUpper: number[] = [];
  const segmentLower: number[] = [];
  const chains: (number[] | undefined)[] = [];
  const addDummy = (l: number, anchor: number) => {
    layer.push(l);
    anchorList.push(anchor);
    return layer.length - 1;
  };
  const link = (a: number, b: number) => {
    segmentUpper.push(a);
    segmentLower.push(b);
  };

  const m = edgeFrom.length;
  const backward = (e: number) => reversed[e] || edgeFrom[e] === edgeTo[e];
  const span = (e: number) => Math.abs(nodeLayer[edgeTo[e]] - nodeLayer[edgeFrom[e]]);
  const cost = (e: number) => (backward(e) ? span(e) + 1 : span(e) - 1);
  // Shortest edges get their slots first: they are the many, and the cheap.
  const routed = new Array<boolean>(m).fill(false);
  let dummies = 0;
  const byCost = Array.from({ length: m }, (_, e) => e).sort((a, b) => cost(a) - cost(b));
  for (const e of byCost) {
    if (dummies + cost(e) > MAX_DUMMIES) break;
    dummies += cost(e);
    routed[e] = true;
  }

  for (let e = 0; e < m; e++) {
    const from = edgeFrom[e];
    const to = edgeTo[e];
    if (!routed[e]) {
      chains.push(undefined);
      continue;
    }
    const chain: number[] = [];
    if (!backward(e)) {
      let previous = from;
      for (let l = nodeLayer[from] + 1; l < nodeLayer[to]; l++) {
        const d = addDummy(l, -1);
        chain.push(d);
        link(previous, d);
        previous = d;
      }
      link(previous, to);
    } else {
      const first = nodeLayer[to];
      const last = nodeLayer[from];
      for (let l = first; l <= last; l++) {
        const anchor = l === last ? from : l === first ? to : -1;
        const d = addDummy(l, anchor);
        if (chain.length > 0) link(chain[chain.length - 1], d);
        chain.push(d);
      }
    }
    chains.push(chain);
  }

  const size = layer.length;
  let layerCount = 0;
  for (const l of layer) layerCount = Math.max(layerCount, l + 1);
  const layers: number[][] = Array.from({ length: layerCount }, () => []);
  const position = new Int32Array(size);
  // Initial order: real nodes in declaration order, each edge slot after its anchor.
  const anchored = csr(size, anchorList.map((a) => (a < 0 ? size : a)));
  const place = (v: number) => {
    position[v] = layers[layer[v]].length;
    layers[layer[v]].push(v);
  };
  for (let v = 0; v < size; v++) {
    if (anchorList[v] >= 0) continue;
    place(v);
    for (let i = anchored.start[v]; i < anchored.start[v + 1]; i++) place(anchored.items[i]);
  }

  return {
    size,
    realCount: n,
    layer,
    layers,
    position,
    up: csr(size, segmentLower, segmentUpper),
    down: csr(size, segmentUpper, segmentLower),
    anchor: Int32Array.from(anchorList),
    chains,
  };
}

/** Compressed adjacency: the items of key k are items[start[k] .. start[k+1]). */
interface Csr {
  start: Int32Array;
  items: Int32Array;
}

/**
 * Groups indices 0..keys.length-1 (or `values`, if given) by key; keys outside 0..n-1
 * are dropped. Items keep their input order within a key, which keeps layouts stable.
 */
function csr(n: number, keys: number[], values?: number[]): Csr {
  const start = new Int32Array(n + 1);
  for (const k of keys) if (k >= 0 && k < n) start[k + 1]++;
  for (let k = 0; k < n; k++) start[k + 1] += start[k];
  const fill = start.slice(0, n);
  const items = new Int32Array(start[n]);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    if (k >= 0 && k < n) items[fill[k]++] = values === undefined ? i : values[i];
  }
  return { start, items };
}

/**
 * Alternating down and up barycenter sweeps; stops after two sweeps without fewer
 * crossings, at zero crossings, or when the budget is spent, and keeps the best order.
 */
function orderLayers(g: LayeredGraph): void {
  if (g.layers.length < 2) return;
  const work = g.size + g.down.items.length;
  const sweeps = Math.max(2, Math.min(MAX_SWEEPS, Math.floor(ORDERING_BUDGET / work)));

  let best = countCrossings(g);
  let bestLayers = g.layers.map((vs) => vs.slice());
  let stale = 0;
  const barycenter = new Float64Array(g.size);
  for (let sweep = 0; sweep < sweeps && best > 0 && stale < 2; sweep++) {
    if (sweep % 2 === 0) {
      for (let l = 1; l < g.layers.length; l++) sortLayer(g, l, g.up, g.layers[l - 1].length, barycenter);
    } else {
      for (let l = g.layers.length - 2; l >= 0; l--) sortLayer(g, l, g.down, g.layers[l + 1].length, barycenter);
    }
    const crossings = countCrossings(g);
    if (crossings < best) {
      best = crossings;
      bestLayers = g.layers.map((vs) => vs.slice());
      stale = 0;
    } else {
      stale++;
    }
  }
  g.layers = bestLayers;
  for (const vs of g.layers) vs.forEach((v, i) => (g.position[v] = i));
}

/**
 * Sorts one layer by the mean position of each vertex's neighbours in the fixed
 * layer. Positions are normalised to 0..1 so layers of different sizes compare; a
 * vertex with no neighbours there keeps its own relative position. Anchored slots
 * sort right after their anchor.
 */
function sortLayer(g: LayeredGraph, l: number, fixed: Csr, fixedSize: number, barycenter: Float64Array): void {
  const vs = g.layers[l];
  for (const v of vs) {
    if (g.anchor[v] >= 0) continue;
    const from = fixed.start[v];
    const to = fixed.start[v + 1];
    if (from === to) {
      barycenter[v] = (g.position[v] + 0.5) / vs.length;
      continue;
    }
    let sum = 0;
    for (let i = from; i < to; i++) sum += g.position[fixed.items[i]];
    barycenter[v] = (sum / (to - from) + 0.5) / fixedSize;
  }
  const root = (v: number) => (g.anchor[v] >= 0 ? g.anchor[v] : v);
  vs.sort((a, b) => {
    if (a === b) return 0;
    const ra = root(a);
    const rb = root(b);
    if (ra !== rb) return barycenter[ra] - barycenter[rb] || g.position[ra] - g.position[rb];
    if (ra === a) return -1;
    if (rb === b) return 1;
    return g.position[a] - g.position[b];
  });
  vs.forEach((v, i) => (g.position[v] = i));
}

/** Crossings between every pair of adjacent layers: inversions, via a Fenwick tree. */
function countCrossings(g: LayeredGraph): number {
  let total = 0;
  const targets: number[] = [];
  for (let l = 0; l + 1 < g.layers.length; l++) {
    const size = g.layers[l + 1].length;
    const tree = new Int32Array(size + 1);
    let seen = 0;
    for (const v of g.layers[l]) {
      targets.length = 0;
      for (let i = g.down.start[v]; i < g.down.start[v + 1]; i++) targets.push(g.position[g.down.items[i]]);
      if (targets.length > 1) targets.sort((a, b) => a - b);
      for (const p of targets) {
        // Earlier segments that end strictly below p cross this one.
        let atMost = 0;
        for (let i = p + 1; i > 0; i -= i & -i) atMost += tree[i];
        total += seen - atMost;
        for (let i = p + 1; i <= size; i += i & -i) tree[i]++;
        seen++;
      }
    }
  }
  return total;
}

/**
 * Vertical centres. Each pass visits the layers in turn and moves each layer's
 * vertices as close as possible (least squares) to the mean centre of their
 * neighbours in the layer just visited, subject to keeping the order and the gaps.
 * Downward and upward passes alternate, and the last pass looks both ways, which
 * straightens chains of dummies and centres a node between its inputs and outputs.
 */
function placeVertically(g: LayeredGraph): Float64Array {
  const y = new Float64Array(g.size);
  const gapBefore = (vs: number[], i: number) => {
    const a = vs[i - 1] < g.realCount;
    const b = vs[i] < g.realCount;
    return (a ? NODE_HEIGHT / 2 : 0) + (b ? NODE_HEIGHT / 2 : 0) + (a && b ? ROW_GAP : EDGE_SLOT_GAP);
  };
  // Start with every column stacked and centred on 0.
  for (const vs of g.layers) {
    let offset = 0;
    for (let i = 0; i < vs.length; i++) {
      if (i > 0) offset += gapBefore(vs, i);
      y[vs[i]] = offset;
    }
    for (const v of vs) y[v] -= offset / 2;
  }

  const desired = new Float64Array(g.size);
  const wanted = (v: number, up: boolean, down: boolean) => {
    if (g.anchor[v] >= 0) return y[g.anchor[v]];
    let sum = 0;
    let count = 0;
    if (up) for (let i = g.up.start[v]; i < g.up.start[v + 1]; i++, count++) sum += y[g.up.items[i]];
    if (down) for (let i = g.down.start[v]; i < g.down.start[v + 1]; i++, count++) sum += y[g.down.items[i]];
    return count === 0 ? y[v] : sum / count;
  };
  const isolated = (v: number) =>
    g.anchor[v] < 0 && g.up.start[v] === g.up.start[v + 1] && g.down.start[v] === g.down.start[v + 1];
  const placeLayer = (vs: number[], up: boolean, down: boolean) => {
    for (let i = 0; i < vs.length; i++) desired[vs[i]] = wanted(vs[i], up, down);
    // A node with no edges at all has nothing to align with; it packs against the
    // vertex above it (or below, at the top) rather than staying where it started.
    for (let i = 0; i < vs.length; i++) {
      if (!isolated(vs[i]) || vs.length === 1) continue;
      desired[vs[i]] = i > 0 ? desired[vs[i - 1]] : desired[vs[1]];
    }
    fitInOrder(vs, desired, y, gapBefore);
  };

  const last = g.layers.length - 1;
  for (let pass = 0; pass < PLACEMENT_PASSES; pass++) {
    if (pass === PLACEMENT_PASSES - 1) {
      for (let l = 0; l <= last; l++) placeLayer(g.layers[l], true, true);
    } else if (pass % 2 === 0) {
      for (let l = 1; l <= last; l++) placeLayer(g.layers[l], true, false);
    } else {
      for (let l = last - 1; l >= 0; l--) placeLayer(g.layers[l], false, true);
    }
  }
  return y;
}

/**
 * Sets y[vs[i]] to minimise the squared distance to desired[vs[i]] subject to
 * y[vs[i]] - y[vs[i-1]] >= gapBefore(vs, i). Subtracting the cumulative gaps turns it
 * into isotonic regression, which pool-adjacent-violators solves in one pass.
 */
function fitInOrder(
  vs: number[],
  desired: Float64Array,
  y: Float64Array,
  gapBefore: (vs: number[], i: number) => number,
): void {
  const k = vs.length;
  const offset = new Float64Array(k);
  for (let i = 1; i < k; i++) offset[i] = offset[i - 1] + gapBefore(vs, i);
  // Blocks of pooled vertices: [blockStart[b], next block's start) with mean blockMean[b].
  const blockStart = new Int32Array(k);
  const blockSum = new Float64Array(k);
  const blockCount = new Int32Array(k);
  let blocks = 0;
  for (let i = 0; i < k; i++) {
    blockStart[blocks] = i;
    blockSum[blocks] = desired[vs[i]] - offset[i];
    blockCount[blocks] = 1;
    blocks++;
    while (
      blocks > 1 &&
      blockSum[blocks - 2] / blockCount[blocks - 2] >= blockSum[blocks - 1] / blockCount[blocks - 1]
    ) {
      blockSum[blocks - 2] += blockSum[blocks - 1];
      blockCount[blocks - 2] += blockCount[blocks - 1];
      blocks--;
    }
  }
  for (let b = 0; b < blocks; b++) {
    const mean = blockSum[b] / blockCount[b];
    const end = b + 1 < blocks ? blockStart[b + 1] : k;
    for (let i = blockStart[b]; i < end; i++) y[vs[i]] = mean + offset[i];
  }
}
