/**
 * Custom LSP requests between the Tideflow extension (or any LSP client) and the
 * language server, and the shapes of the commands its code lenses carry.
 */
import { RequestType } from "vscode-languageserver-protocol";
import type { DagLayout } from "./dag";
import type { Range } from "./model";

/** Arguments of `tideflow.test`, `tideflow.backfill` and `tideflow.showDag` code lenses. */
export interface WorkflowCommandArgs {
  uri: string;
  workflow: string;
  task?: string;
}

export const COMMANDS = {
  test: "tideflow.test",
  backfill: "tideflow.backfill",
  showDag: "tideflow.showDag",
} as const;

export interface WorkflowSummary {
  id: string;
  uri: string;
  range: Range;
  schedule?: string;
  /** The file has a schedule that is not a valid cron (then `schedule` is absent). */
  scheduleInvalid?: boolean;
  timezone?: string;
  tasks: { id: string; kind: "task" | "shell"; range: Range; upstream: string[] }[];
  /** `from` is upstream of `to`; ids of other workflows are `workflow.task`. */
  edges: { from: string; to: string }[];
  diagnostics: { errors: number; warnings: number };
}

export interface WorkflowsResult {
  workflows: WorkflowSummary[];
}

/** Client → server: every workflow of the workspace. */
export const WorkflowsRequest = new RequestType<Record<string, never> | null, WorkflowsResult, void>(
  "tideflow/workflows",
);

/** Name a workflow by id, or by the file that defines it. */
export interface DagParams {
  workflow?: string;
  uri?: string;
}

/** Client → server: one workflow laid out, layered left to right. */
export const DagRequest = new RequestType<DagParams, DagLayout | null, void>("tideflow/dag");

export interface DagSvgResult {
  svg: string;
}

/** Client → server: the same layout as a standalone SVG document. */
export const DagSvgRequest = new RequestType<DagParams, DagSvgResult | null, void>("tideflow/dagSvg");

/** Settings under `tideflow.*`, pulled per resource with `workspace/configuration`. */
export interface ServerSettings {
  diagnostics: {
    /** Delay between the last edit and re-analysis, ms. */
    debounceMs: number;
  };
  /** Files larger than this are not analyzed (a diagnostic says so), bytes. */
  maxFileSize: number;
}

export const DEFAULT_SETTINGS: ServerSettings = {
  diagnostics: { debounceMs: 200 },
  maxFileSize: 2 * 1024 * 1024,
};
