/** A workflow's DAG before and after layout. Plain data; crosses the LSP boundary. */

/**
 * Box metrics of the layout, shared by everything that draws it (the server's SVG, the
 * extension's DAG webview) so that labels fit the boxes.
 */
export const NODE_HEIGHT = 36;
export const MIN_NODE_WIDTH = 96;
export const MAX_NODE_WIDTH = 260;
/** Labels are drawn in a 12 px monospace font, whose advance is 0.6 em. */
export const LABEL_CHAR_WIDTH = 7.2;
export const LABEL_PADDING_X = 10;
/** Room at the left of a box for the kind tag ("ts", "sh", "ext"). */
export const KIND_TAG_WIDTH = 26;

export interface DagNode {
  /** Task id, or `workflow.task` for a node of another workflow. */
  id: string;
  label: string;
  /** `external`: an upstream in another workflow, drawn dashed. */
  kind: "task" | "shell" | "external";
}

export interface DagEdge {
  from: string;
  to: string;
}

export interface DagGraph {
  workflow: string;
  nodes: DagNode[];
  edges: DagEdge[];
}

export interface Point {
  x: number;
  y: number;
}

export interface LaidOutNode extends DagNode {
  /** Top-left corner. */
  x: number;
  y: number;
  width: number;
  height: number;
  /** Column, from 0 at the sources (layered left to right). */
  layer: number;
}

export interface LaidOutEdge extends DagEdge {
  /** From the source box's right side to the target box's left side. */
  points: Point[];
}

export interface DagLayout {
  workflow: string;
  width: number;
  height: number;
  nodes: LaidOutNode[];
  edges: LaidOutEdge[];
}
