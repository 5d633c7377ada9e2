/** Finding workflow files on disk, for the language server's index and the CLI. */
import { readFile, readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { analyzeFile } from "./analyzer/analyze";
import { WorkspaceIndex } from "./analyzer/workspace";

const SKIP_DIRS = new Set(["node_modules", ".git", ".tideflow", ".hg", ".svn", "dist", "out"]);

export function isWorkflowFile(path: string): boolean {
  return /\.flow\.(ts|js)$/.test(path);
}

/** Every `*.flow.ts` / `*.flow.js` under `root`, skipping dependency and build folders. */
export async function findWorkflowFiles(root: string, limit = 10_000): Promise<string[]> {
  const found: string[] = [];
  const pending = [root];
  while (pending.length > 0 && found.length < limit) {
    const dir = pending.pop()!;
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      continue; // unreadable or vanished while we walked: nothing to index there
    }
    for (const e of entries) {
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name) && !e.name.startsWith(".")) pending.push(join(dir, e.name));
      } else if (e.isFile() && isWorkflowFile(e.name)) {
        found.push(join(dir, e.name));
      }
    }
  }
  return found.sort();
}

export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** Index every workflow file under `root`, plus `extra` files that may lie outside it. */
export async function loadWorkspace(root: string, extra: string[] = []): Promise<WorkspaceIndex> {
  const index = new WorkspaceIndex();
  const paths = new Set([...(await findWorkflowFiles(root)), ...extra.map((p) => resolve(p))]);
  for (const path of paths) {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch {
      continue;
    }
    index.set(analyzeFile(pathToFileURL(path).href, text));
  }
  return index;
}
