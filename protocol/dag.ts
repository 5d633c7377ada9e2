/** A workflow's DAG before and after layout. Plain data; crosses the LSP boundary. */

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
