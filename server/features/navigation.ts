import { ResponseError, ErrorCodes, type Location, type Position, type TextEdit, type WorkspaceEdit, type Range } from "vscode-languageserver";
import { ID_PATTERN } from "../../protocol/model";
import type { WorkspaceIndex } from "../analyzer/workspace";

export function definition(index: WorkspaceIndex, uri: string, position: Position): Location | null {
  const hit = index.taskAt(uri, position);
  if (!hit) return null;
  return { uri: hit.target.file.uri, range: hit.target.task.idRange };
}

export function references(index: WorkspaceIndex, uri: string, position: Position, includeDeclaration: boolean): Location[] {
  const hit = index.taskAt(uri, position);
  if (!hit) return [];
  return index
    .references(hit.target)
    .filter((r) => includeDeclaration || r.form !== "declaration")
    .map((r) => ({ uri: r.uri, range: r.range }));
}

export function prepareRename(index: WorkspaceIndex, uri: string, position: Position): { range: Range; placeholder: string } | null {
  const hit = index.taskAt(uri, position);
  // An upstream written as a constant names the constant, which TypeScript renames.
  if (!hit || hit.at.form === "identifier") return null;
  return { range: hit.at.taskRange, placeholder: hit.target.task.id };
}

export function rename(index: WorkspaceIndex, uri: string, position: Position, newName: unknown): WorkspaceEdit | null {
  // Checked before anything: RegExp.test(undefined) tests the string "undefined".
  if (typeof newName !== "string") {
    throw new ResponseError(ErrorCodes.InvalidParams, `textDocument/rename needs newName, the new task id as a string; got ${newName === undefined ? "none" : typeof newName}.`);
  }
  const hit = index.taskAt(uri, position);
  if (!hit) return null;
  if (!ID_PATTERN.test(newName)) {
    throw new ResponseError(ErrorCodes.InvalidParams, `"${newName}" is not a valid task id: ids start with a letter or _ and contain only letters, digits, _ and -.`);
  }
  const { target } = hit;
  if (newName !== target.task.id && target.file.tasks.some((t) => t.id === newName)) {
    throw new ResponseError(ErrorCodes.InvalidParams, `Workflow ${target.file.workflow?.id ?? ""} already has a task "${newName}".`);
  }
  const changes: Record<string, TextEdit[]> = {};
  for (const ref of index.references(target)) {
    if (ref.form === "identifier") continue;
    (changes[ref.uri] ??= []).push({ range: ref.taskRange, newText: newName });
  }
  return { changes };
}
