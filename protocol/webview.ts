/**
 * Messages between the extension and its webviews (the DAG preview, the task instance
 * details). Both sides import these types: the panels in `client/`, the scripts in
 * `media/`. Every message is plain JSON (VS Code serializes it), so maps travel as arrays
 * of pairs.
 */
import type { DagLayout } from "./dag";
import type { TaskState } from "./runner";

// ---------------------------------------------------------------------------------------
// DAG preview (`client/dag-panel.ts` ⇄ `media/dag.ts`)
// ---------------------------------------------------------------------------------------

/** A workflow instance the selector offers. */
export interface InstanceOption {
  id: string;
  /** e.g. `run-7 · test · 2026-11-19`. */
  label: string;
}

/** Extension → DAG webview. */
export type DagHostMessage =
  | {
      /** The workflow file's layout, after the webview's `ready` and after every re-analysis. */
      type: "layout";
      uri: string;
      workflowId: string;
      /** The file's base name, for messages (`daily-sales.flow.ts has errors: …`). */
      fileName: string;
      /** null: the file has no layout (it has errors). */
      layout: DagLayout | null;
      /** Set when the layout could not be fetched at all (server down, request failed). */
      error?: string;
    }
  | {
      /** The selector's content: newest first; `selected` is the instance whose states follow. */
      type: "instances";
      instances: InstanceOption[];
      /** null when there is no instance. */
      selected: string | null;
    }
  | {
      /** The task states of the selected instance (tasks outside its selection are absent). */
      type: "states";
      instanceId: string | null;
      states: [task: string, state: TaskState][];
    };

/** DAG webview → extension. */
export type DagWebviewMessage =
  | {
      /**
       * The script loaded (first show, or shown again after being hidden): the extension
       * answers with `layout`, `instances` and `states`. `pinned` is the instance the
       * person chose before, from the webview's saved state; null follows the newest.
       */
      type: "ready";
      pinned: string | null;
    }
  | {
      /** The person picked an instance in the selector. */
      type: "select";
      instanceId: string;
    }
  | {
      /** The person clicked a node (or pressed Enter on it). */
      type: "reveal";
      task: string;
    };

/**
 * What the DAG webview keeps across hide/show and reloads (`vscode.setState`); also what a
 * panel serializer gets back to revive the panel.
 */
export interface DagViewState {
  uri?: string;
  workflowId?: string;
  /** The SVG viewBox after zoom/pan; null (or absent) fits the whole graph. */
  view?: { x: number; y: number; w: number; h: number } | null;
  /** An instance chosen that is not the newest; null (or absent) follows the newest. */
  pinned?: string | null;
}

// ---------------------------------------------------------------------------------------
// Task instance details (`client/details-panel.ts` ⇄ `media/details.ts`)
// ---------------------------------------------------------------------------------------

/** Details webview → extension. (The extension renders the page itself; it sends nothing.) */
export type DetailsWebviewMessage = {
  /** "Show log" of one attempt. */
  type: "showLog";
  attempt: number;
};

/** What the details webview keeps across re-renders and hide/show. */
export interface DetailsViewState {
  scrollY?: number;
}

// ---------------------------------------------------------------------------------------
// Guards: messages from a webview are checked before use, like any input.
// ---------------------------------------------------------------------------------------

export function isDagWebviewMessage(value: unknown): value is DagWebviewMessage {
  if (typeof value !== "object" || value === null) return false;
  const m = value as Record<string, unknown>;
  switch (m.type) {
    case "ready":
      return m.pinned === null || typeof m.pinned === "string";
    case "select":
      return typeof m.instanceId === "string";
    case "reveal":
      return typeof m.task === "string";
    default:
      return false;
  }
}

export function isDetailsWebviewMessage(value: unknown): value is DetailsWebviewMessage {
  if (typeof value !== "object" || value === null) return false;
  const m = value as Record<string, unknown>;
  return m.type === "showLog" && typeof m.attempt === "number" && Number.isInteger(m.attempt) && m.attempt >= 1;
}
