/**
 * A laid-out DAG as a standalone SVG document: for `tideflow/dagSvg`, the CLI's
 * `tideflow dag --svg`, and the preview webview.
 *
 * Colours are presentation attributes, not a <style> element, so the SVG renders
 * inside a webview whose CSP forbids inline styles; each node also carries
 * `data-id`/`data-state` and a `state-*` class, so a stylesheet (which beats
 * presentation attributes) can recolour live state without re-rendering.
 */
import type { DagLayout, LaidOutNode, Point } from "../../protocol/dag";
import { KIND_TAG_WIDTH, LABEL_CHAR_WIDTH, LABEL_PADDING_X } from "./layout";

export interface DagSvgOptions {
  /** Drawn above the graph and used as the document's <title>. */
  title?: string;
  /** Task id → state name (`not_run`, `waiting`, `running`, `success`, `failed`, `killed`, `paused`). */
  states?: Record<string, string>;
}

interface Palette {
  fill: string;
  stroke: string;
}

/** Pale fills keep dark text readable; strokes carry the hue. */
export const STATE_COLORS: Readonly<Record<string, Palette>> = {
  not_run: { fill: "#ffffff", stroke: "#9aa5b4" },
  waiting: { fill: "#fff6dd", stroke: "#c99a06" },
  running: { fill: "#e3f0ff", stroke: "#1f6fd1" },
  success: { fill: "#e6f4ea", stroke: "#2e7d32" },
  failed: { fill: "#fdecea", stroke: "#c62828" },
  killed: { fill: "#f3e8f7", stroke: "#7b3fa0" },
  paused: { fill: "#eceff3", stroke: "#5f6f82" },
};

const NO_STATE: Palette = { fill: "#ffffff", stroke: "#5b6b82" };
const BACKGROUND = "#f6f8fa";
const TEXT = "#1f2933";
const MUTED = "#6b7785";
const EDGE = "#8792a2";
const FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace";
const TITLE_HEIGHT = 32;
const KIND_TAG: Record<LaidOutNode["kind"], string> = { task: "ts", shell: "sh", external: "ext" };

export function renderDagSvg(layout: DagLayout, options: DagSvgOptions = {}): string {
  const states = options.states ?? {};
  const title = options.title;
  const top = title === undefined ? 0 : TITLE_HEIGHT;
  const width = Math.max(1, layout.width);
  const height = Math.max(1, layout.height + top);

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${num(width)}" height="${num(height)}" ` +
      `viewBox="0 0 ${num(width)} ${num(height)}" font-family="${FONT}" font-size="12" ` +
      `data-workflow="${escapeXml(layout.workflow)}">`,
  );
  out.push(`<title>${escapeXml(title ?? layout.workflow)}</title>`);
  out.push(
    `<defs><marker id="tideflow-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" ` +
      `markerHeight="8" markerUnits="userSpaceOnUse" orient="auto">` +
      `<path d="M0,0 L10,5 L0,10 z" fill="${EDGE}"/></marker></defs>`,
  );
  out.push(`<rect class="background" width="100%" height="100%" fill="${BACKGROUND}"/>`);
  if (title !== undefined) {
    out.push(
      `<text class="title" x="24" y="22" font-size="14" font-weight="600" fill="${TEXT}">${escapeXml(title)}</text>`,
    );
  }

  out.push(`<g transform="translate(0 ${num(top)})">`);
  // Edges first so boxes sit on top of their arrowheads' bases.
  out.push(`<g class="edges" fill="none" stroke="${EDGE}" stroke-width="1.5">`);
  for (const edge of layout.edges) {
    out.push(
      `<path class="edge" data-from="${escapeXml(edge.from)}" data-to="${escapeXml(edge.to)}" ` +
        `d="${edgePath(edge.points)}" marker-end="url(#tideflow-arrow)"/>`,
    );
  }
  out.push(`</g>`);

  out.push(`<g class="nodes">`);
  for (const node of layout.nodes) {
    out.push(renderNode(node, Object.hasOwn(states, node.id) ? states[node.id] : undefined));
  }
  out.push(`</g></g></svg>`);
  return out.join("\n") + "\n";
}

function renderNode(node: LaidOutNode, state: string | undefined): string {
  const palette = state !== undefined && Object.hasOwn(STATE_COLORS, state) ? STATE_COLORS[state] : NO_STATE;
  const classes = ["node", `kind-${node.kind}`];
  if (state !== undefined) classes.push(`state-${cssIdent(state)}`);
  const midY = node.y + node.height / 2;
  const dash = node.kind === "external" ? ` stroke-dasharray="5 3"` : "";
  const labelX = node.x + KIND_TAG_WIDTH + LABEL_PADDING_X / 2;
  const room = Math.floor((node.width - KIND_TAG_WIDTH - LABEL_PADDING_X * 1.5) / LABEL_CHAR_WIDTH);
  const label = truncate(node.label, room);
  const tooltip = node.label === node.id ? node.id : `${node.label} (${node.id})`;
  const stateTooltip = state === undefined ? "" : `: ${state}`;

  return [
    `<g class="${classes.join(" ")}" data-id="${escapeXml(node.id)}"` +
      (state === undefined ? "" : ` data-state="${escapeXml(state)}"`) +
      `>`,
    `<title>${escapeXml(tooltip + stateTooltip)}</title>`,
    `<rect x="${num(node.x)}" y="${num(node.y)}" width="${num(node.width)}" height="${num(node.height)}" ` +
      `rx="6" fill="${palette.fill}" stroke="${palette.stroke}" stroke-width="1.5"${dash}/>`,
    `<text class="kind" x="${num(node.x + KIND_TAG_WIDTH / 2 + 2)}" y="${num(midY)}" ` +
      `text-anchor="middle" dominant-baseline="central" font-size="9" fill="${MUTED}">${KIND_TAG[node.kind]}</text>`,
    `<text class="label" x="${num(labelX)}" y="${num(midY)}" dominant-baseline="central" fill="${TEXT}">` +
      `${escapeXml(label)}</text>`,
    `</g>`,
  ].join("");
}

/**
 * Horizontal runs stay straight; every other segment is a cubic with horizontal
 * tangents at both ends, so it stays within the x-range of its two points (the gap
 * between columns, where no box is) and joins the runs smoothly.
 */
function edgePath(points: Point[]): string {
  if (points.length === 0) return "";
  let d = `M${num(points[0].x)},${num(points[0].y)}`;
  for (let i = 1; i < points.length; i++) {
    const p = points[i - 1];
    const q = points[i];
    if (p.y === q.y || p.x === q.x) {
      d += ` L${num(q.x)},${num(q.y)}`;
    } else {
      const mid = (q.x - p.x) / 2;
      d += ` C${num(p.x + mid)},${num(p.y)} ${num(q.x - mid)},${num(q.y)} ${num(q.x)},${num(q.y)}`;
    }
  }
  return d;
}

function truncate(text: string, room: number): string {
  const chars = Array.from(text);
  if (chars.length <= room) return text;
  return chars.slice(0, Math.max(1, room - 1)).join("") + "…";
}

/**
 * Escapes text for element content and quoted attributes, and drops code points XML
 * 1.0 forbids (control characters, lone surrogates), which would make the whole
 * document ill-formed rather than just show a wrong glyph.
 */
export function escapeXml(text: string): string {
  return text.replace(NOT_XML_CHAR, "").replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

const NOT_XML_CHAR =
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" };

function cssIdent(text: string): string {
  return text.replace(/[^A-Za-z0-9_-]/g, "_");
}

function num(value: number): string {
  return String(Math.round(value * 10) / 10);
}
