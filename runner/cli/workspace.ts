import { statSync } from "node:fs";
import { resolve } from "node:path";
import { UsageError } from "./args";

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
