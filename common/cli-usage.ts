/**
 * What the command line refuses as a usage error (exit 2), shared by the CLI's entry
 * (`runner/cli.ts` and its runner commands) and its file commands (`server/cli-files.ts`,
 * dist/cli-files.js): a bundle of its own, hence a copy of this module of its own too.
 */
import { statSync } from "node:fs";
import { resolve } from "node:path";

/** The user's mistake on the command line: exit 2, with the command's usage line. */
export class UsageError extends Error {
  /** check and dag are bundled apart, with their own copy of this class: test this, not instanceof. */
  readonly isUsageError = true;
  constructor(
    message: string,
    /** The command whose usage to show; by default the one being run. */
    readonly command?: string,
  ) {
    super(message);
  }
}

export function isUsageError(e: unknown): e is UsageError {
  return e instanceof Error && (e as Partial<UsageError>).isUsageError === true;
}

/**
 * The workspace: --workspace DIR, else the current directory. A --workspace that is not
 * an existing folder is refused, so that a typo never creates a folder (with a runner and
 * a .tideflow/ in it).
 */
export function workspaceOf(flag: string | undefined): string {
  if (flag === undefined) return process.cwd();
  const dir = resolve(flag);
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw new UsageError(`--workspace ${flag}: no such folder`);
  }
  if (!isDir) throw new UsageError(`--workspace ${flag}: not a folder`);
  return dir;
}
