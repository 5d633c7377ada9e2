/**
 * `tideflow check` and `tideflow dag`: what the CLI's entry (`runner/cli.ts`, dist/cli.js)
 * calls in the bundle that holds the analyzer (`server/cli-files.ts`, dist/cli-files.js).
 * That bundle is required by path only when one of them runs, so that the other commands
 * start without TypeScript's parser; across that seam go plain options, a promised exit
 * code, and usage errors recognised by their mark (`common/cli-usage.ts`), not by class.
 */

export interface CheckOptions {
  /** Files and directories as given. */
  paths: string[];
  /** --workspace as given. */
  workspace: string | undefined;
  json: boolean;
}

export interface DagOptions {
  /** The workflow file as given. */
  path: string;
  /** --svg as given: a file, or "-" for stdout. */
  svg: string | undefined;
  /** --workspace as given. */
  workspace: string | undefined;
}

/** dist/cli-files.js's exports; each resolves to the exit code. */
export interface FileCommands {
  check(o: CheckOptions): Promise<number>;
  dag(o: DagOptions): Promise<number>;
}
