/**
 * The DAG preview's script (bundled to media/dag.js): draws the server's layout as SVG,
 * colors nodes by the selected instance's task states, zooms and pans by changing the
 * viewBox. Every text that came from a workflow reaches the page through `textContent` or
 * `setAttribute`, never through markup.
 *
 * Hooks (for tests): `svg.dag g.node[data-task][data-state]` with `aria-label` and a
 * `<title>` "<task>: <state word>"; `select#instance`; `#message`; `#legend`;
 * `#zoom-in`, `#zoom-out`, `#zoom-fit`; `svg.dag polyline.edge[data-from][data-to]`.
 */
import { stateAttribute, stateClass, stateWord } from "../client/state-style";
import { KIND_TAG_WIDTH, LABEL_PADDING_X, type DagLayout, type LaidOutNode } from "../protocol/dag";
import { TASK_STATES, type TaskState } from "../protocol/runner";
import type { DagHostMessage, DagViewState, DagWebviewMessage, InstanceOption } from "../protocol/webview";
import { webviewApi } from "./webview-api";

const SVG_NS = "http://www.w3.org/2000/svg";
const KIND_TAG: Record<LaidOutNode["kind"], string> = { task: "ts", shell: "sh", external: "ext" };
/** Room around the graph when fitted, in layout units. */
const MARGIN = 16;
/** Zoom limits relative to the fitted view: 12× in, 4× out. */
const MAX_ZOOM_IN = 12;
const MAX_ZOOM_OUT = 4;
/** A press that moves less than this (px) is a click, not a pan. */
const DRAG_THRESHOLD = 4;

interface ViewBox {
  x: number;
  y: number;
  w: number;
  h: number;
}

const vscode = webviewApi<DagViewState, DagWebviewMessage>();
/** Mutated, then saved with `save()`: zoom and the pinned instance survive hide/show. */
const saved: DagViewState = { ...(vscode.getState() ?? {}) };

const select = element<HTMLSelectElement>("instance");
const canvas = element<HTMLElement>("canvas");
const messageBox = element<HTMLElement>("message");
const legend = element<HTMLElement>("legend");
const zoomButtons = [element<HTMLButtonElement>("zoom-in"), element<HTMLButtonElement>("zoom-out"), element<HTMLButtonElement>("zoom-fit")];

let layout: DagLayout | null = null;
let svg: SVGSVGElement | null = null;
/** The drawn nodes by task id, with what repainting needs. */
const drawn = new Map<string, { node: LaidOutNode; group: SVGGElement; title: SVGTitleElement }>();
/** The instance the selector shows; states of any other instance are ignored. */
let selected: string | null = null;
let states = new Map<string, TaskState>();

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`Expected an element #${id} in the DAG page, found none`);
  return found as T;
}

function svgElement<K extends keyof SVGElementTagNameMap>(name: K, attributes: Record<string, string | number> = {}): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) el.setAttribute(key, String(value));
  return el;
}

function save(): void {
  vscode.setState(saved);
}

function post(message: DagWebviewMessage): void {
  vscode.postMessage(message);
}

// ---------------------------------------------------------------------------------------
// Drawing
// ---------------------------------------------------------------------------------------

function showMessage(text: string | null): void {
  messageBox.hidden = text === null;
  messageBox.textContent = text ?? "";
  for (const b of zoomButtons) b.disabled = text !== null;
}

function draw(next: DagLayout | null, fileName: string, error: string | undefined): void {
  layout = next;
  drawn.clear();
  svg?.remove();
  svg = null;
  if (error !== undefined) return showMessage(`Could not get the DAG of ${fileName}: ${error}`);
  if (next === null) return showMessage(`${fileName} has errors: fix them to see its DAG.`);
  if (next.nodes.length === 0) return showMessage(`${fileName} defines no tasks yet.`);
  showMessage(null);

  const root = svgElement("svg", { class: "dag", role: "group", "aria-label": `DAG of ${next.workflow}`, preserveAspectRatio: "xMidYMid meet" });
  const marker = svgElement("marker", {
    id: "tideflow-arrow",
    viewBox: "0 0 10 10",
    refX: 10,
    refY: 5,
    markerWidth: 8,
    markerHeight: 8,
    markerUnits: "userSpaceOnUse",
    orient: "auto",
  });
  marker.append(svgElement("path", { class: "arrowhead", d: "M0,0 L10,5 L0,10 z" }));
  const defs = svgElement("defs");
  defs.append(marker);

  // Edges first, so boxes sit on top of the arrowheads' bases.
  const edges = svgElement("g", { class: "edges" });
  for (const edge of next.edges) {
    const line = svgElement("polyline", {
      class: "edge",
      points: edge.points.map((p) => `${p.x},${p.y}`).join(" "),
      "marker-end": "url(#tideflow-arrow)",
    });
    line.setAttribute("data-from", edge.from);
    line.setAttribute("data-to", edge.to);
    edges.append(line);
  }

  const nodes = svgElement("g", { class: "nodes" });
  const labels: { text: SVGTextElement; label: string; room: number }[] = [];
  for (const node of next.nodes) {
    const group = svgElement("g", { tabindex: 0, role: "button" });
    group.setAttribute("data-task", node.id);
    const title = svgElement("title");
    const midY = node.y + node.height / 2;
    const rect = svgElement("rect", { class: "box", x: node.x, y: node.y, width: node.width, height: node.height, rx: 6 });
    const kind = svgElement("text", { class: "kind", x: node.x + KIND_TAG_WIDTH / 2 + 2, y: midY, "text-anchor": "middle", "dominant-baseline": "central" });
    kind.textContent = KIND_TAG[node.kind];
    const text = svgElement("text", { class: "label", x: node.x + KIND_TAG_WIDTH + LABEL_PADDING_X / 2, y: midY, "dominant-baseline": "central" });
    text.textContent = node.label;
    labels.push({ text, label: node.label, room: node.width - KIND_TAG_WIDTH - LABEL_PADDING_X * 1.5 });
    group.append(title, rect, kind, text);
    nodes.append(group);
    drawn.set(node.id, { node, group, title });
  }

  root.append(defs, edges, nodes);
  canvas.append(root);
  svg = root;
  truncateLabels(labels);
  applyView();
  paint();
}

/** Shortens labels wider than their box (in the webview's actual font), ending them with "…". */
function truncateLabels(labels: { text: SVGTextElement; label: string; room: number }[]): void {
  const context = document.createElement("canvas").getContext("2d");
  if (!context || labels.length === 0) return;
  const style = getComputedStyle(labels[0].text);
  context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
  for (const { text, label, room } of labels) {
    if (context.measureText(label).width <= room) continue;
    const chars = Array.from(label);
    let lo = 1;
    let hi = chars.length - 1;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (context.measureText(chars.slice(0, mid).join("") + "…").width <= room) lo = mid;
      else hi = mid - 1;
    }
    text.textContent = chars.slice(0, lo).join("") + "…";
  }
}

/** Applies `states` to every node: class, `data-state`, title and aria-label. */
function paint(): void {
  for (const [id, { node, group, title }] of drawn) {
    const state = states.get(id);
    group.setAttribute("class", `node kind-${node.kind} ${stateClass(state)}`);
    group.setAttribute("data-state", stateAttribute(state));
    const name = node.label === node.id ? node.id : `${node.label} (${node.id})`;
    const description = `${name}: ${stateWord(state)}`;
    title.textContent = description;
    group.setAttribute("aria-label", description);
  }
}

function drawLegend(): void {
  const items = TASK_STATES.map((state) => legendItem(`legend-item ${stateClass(state)}`, stateWord(state)));
  items.push(legendItem("legend-item external", "other workflow"));
  legend.replaceChildren(...items);
}

function legendItem(className: string, text: string): HTMLLIElement {
  const li = document.createElement("li");
  li.className = className;
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.setAttribute("aria-hidden", "true");
  li.append(swatch, document.createTextNode(text));
  return li;
}

function showInstances(instances: InstanceOption[], chosen: string | null): void {
  const options = instances.map((i) => {
    const option = document.createElement("option");
    option.value = i.id;
    option.textContent = i.label;
    return option;
  });
  if (options.length === 0) {
    const none = document.createElement("option");
    none.value = "";
    none.textContent = "no instance";
    options.push(none);
  }
  select.replaceChildren(...options);
  select.disabled = instances.length === 0;
  select.value = chosen ?? "";
  selected = chosen;
  saved.pinned = chosen !== null && chosen !== instances[0]?.id ? chosen : null;
  save();
}

// ---------------------------------------------------------------------------------------
// Zoom and pan: only the viewBox changes. `saved.view` null means "fit".
// ---------------------------------------------------------------------------------------

/** The whole graph with a margin, and never scaled above 1 unit per pixel (small graphs stay at their size). */
function fitBox(): ViewBox {
  const width = (layout?.width ?? 0) + 2 * MARGIN;
  const height = (layout?.height ?? 0) + 2 * MARGIN;
  const w = Math.max(width, canvas.clientWidth, 1);
  const h = Math.max(height, canvas.clientHeight, 1);
  return { x: -MARGIN - (w - width) / 2, y: -MARGIN - (h - height) / 2, w, h };
}

function currentBox(): ViewBox {
  return saved.view ?? fitBox();
}

function applyView(): void {
  const b = currentBox();
  svg?.setAttribute("viewBox", `${b.x} ${b.y} ${b.w} ${b.h}`);
}

function setView(view: ViewBox | null): void {
  saved.view = view;
  save();
  applyView();
}

/** Scales the view by `factor` (<1 zooms in) around a point in layout units (default: the view's center). */
function zoom(factor: number, at?: { x: number; y: number }): void {
  if (!svg) return;
  const b = currentBox();
  const fit = fitBox();
  const w = Math.min(Math.max(b.w * factor, fit.w / MAX_ZOOM_IN), fit.w * MAX_ZOOM_OUT);
  const f = w / b.w;
  const cx = at?.x ?? b.x + b.w / 2;
  const cy = at?.y ?? b.y + b.h / 2;
  setView({ x: cx - (cx - b.x) * f, y: cy - (cy - b.y) * f, w, h: b.h * f });
}

function toLayout(clientX: number, clientY: number): { x: number; y: number } | undefined {
  const ctm = svg?.getScreenCTM();
  if (!ctm) return undefined;
  const p = new DOMPoint(clientX, clientY).matrixTransform(ctm.inverse());
  return { x: p.x, y: p.y };
}

let drag: { pointerId: number; startX: number; startY: number; box: ViewBox; unitsPerPixel: number; moved: boolean } | undefined;
/** Set when a press turned into a pan: the click that ends it must not reveal a task. */
let suppressClick = false;

canvas.addEventListener(
  "wheel",
  (e) => {
    if (!svg) return;
    e.preventDefault();
    zoom(Math.exp(e.deltaY * 0.0015), toLayout(e.clientX, e.clientY));
  },
  { passive: false },
);

canvas.addEventListener("pointerdown", (e) => {
  if (!svg || e.button !== 0) return;
  const ctm = svg.getScreenCTM();
  suppressClick = false;
  drag = { pointerId: e.pointerId, startX: e.clientX, startY: e.clientY, box: currentBox(), unitsPerPixel: ctm ? 1 / ctm.a : 1, moved: false };
});

canvas.addEventListener("pointermove", (e) => {
  if (!drag || e.pointerId !== drag.pointerId) return;
  const dx = e.clientX - drag.startX;
  const dy = e.clientY - drag.startY;
  if (!drag.moved) {
    if (Math.hypot(dx, dy) < DRAG_THRESHOLD) return;
    drag.moved = true;
    // Captured only once it is a pan, so that a plain click still targets the node.
    canvas.setPointerCapture(e.pointerId);
    canvas.classList.add("panning");
  }
  const { box, unitsPerPixel } = drag;
  saved.view = { x: box.x - dx * unitsPerPixel, y: box.y - dy * unitsPerPixel, w: box.w, h: box.h };
  applyView();
});

function endDrag(e: PointerEvent): void {
  if (!drag || e.pointerId !== drag.pointerId) return;
  if (drag.moved) {
    suppressClick = true;
    canvas.classList.remove("panning");
    save();
  }
  drag = undefined;
}
canvas.addEventListener("pointerup", endDrag);
canvas.addEventListener("pointercancel", endDrag);

function nodeTask(target: EventTarget | null): string | undefined {
  const group = target instanceof Element ? target.closest("g.node") : null;
  return group?.getAttribute("data-task") ?? undefined;
}

canvas.addEventListener("click", (e) => {
  if (suppressClick) {
    suppressClick = false;
    return;
  }
  const task = nodeTask(e.target);
  if (task !== undefined) post({ type: "reveal", task });
});

canvas.addEventListener("keydown", (e) => {
  if (e.key !== "Enter" && e.key !== " ") return;
  const task = nodeTask(e.target);
  if (task === undefined) return;
  e.preventDefault();
  post({ type: "reveal", task });
});

document.addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLSelectElement || e.altKey || e.ctrlKey || e.metaKey) return;
  if (e.key === "+" || e.key === "=") zoom(1 / 1.25);
  else if (e.key === "-" || e.key === "_") zoom(1.25);
  else if (e.key === "0") setView(null);
});

element<HTMLButtonElement>("zoom-in").addEventListener("click", () => zoom(1 / 1.25));
element<HTMLButtonElement>("zoom-out").addEventListener("click", () => zoom(1.25));
element<HTMLButtonElement>("zoom-fit").addEventListener("click", () => setView(null));

// A fitted view follows the panel's size.
new ResizeObserver(() => {
  if (saved.view == null) applyView();
}).observe(canvas);

select.addEventListener("change", () => {
  const id = select.value;
  if (id === "") return;
  selected = id;
  post({ type: "select", instanceId: id });
});

// ---------------------------------------------------------------------------------------
// Messages from the extension
// ---------------------------------------------------------------------------------------

window.addEventListener("message", (event: MessageEvent<DagHostMessage>) => {
  const message = event.data;
  switch (message.type) {
    case "layout":
      saved.uri = message.uri;
      saved.workflowId = message.workflowId;
      save();
      draw(message.layout, message.fileName, message.error);
      break;
    case "instances":
      showInstances(message.instances, message.selected);
      break;
    case "states":
      // A late answer for an instance the person has just left is dropped.
      if (message.instanceId !== selected) return;
      states = new Map(message.states);
      paint();
      break;
  }
});

drawLegend();
post({ type: "ready", pinned: saved.pinned ?? null });
