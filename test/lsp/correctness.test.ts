/**
 * The language server's correctness gaps of issue 9 §2, each over stdio against the real
 * server: a task constant whose id cannot be read, a second workflow in a file, an entry
 * of `tasks` that names nothing, and a rename without a new name.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type CodeAction, CodeActionRequest, type Diagnostic, RenameRequest } from "vscode-languageserver-protocol";
import { LspClient, positionOf, uriOf } from "./harness";

let client: LspClient;
let dir: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tideflow-lsp-correct-"));
  client = await LspClient.start({ root: dir });
});
after(async () => {
  await client.stop();
  rmSync(dir, { recursive: true, force: true });
});

const text = (d: Diagnostic) => (typeof d.message === "string" ? d.message : "");

async function diagnose(name: string, source: string): Promise<Diagnostic[]> {
  const uri = uriOf(join(dir, name));
  const got = client.waitForDiagnostics(uri);
  await client.open(uri, source);
  return got;
}

test("a listed task constant whose id is not static: not-static, not unknown-upstream", async () => {
  const ds = await diagnose(
    "dynamic.flow.ts",
    `import { workflow, shell } from "tideflow";\nconst X = "a";\nexport const a = shell(X, "true");\nexport const b = shell("b", { upstream: [a] }, "true");\nexport default workflow("dyn", { tasks: [a, b] });\n`,
  );
  assert.deepEqual(ds.filter((d) => d.code === "unknown-upstream" || d.code === "invalid-option"), [], JSON.stringify(ds));
  const about = ds.filter((d) => d.code === "not-static" && /`a` is a task constant of this file whose id Tideflow cannot read statically/.test(text(d)));
  assert.equal(about.length, 2, `one for the tasks entry, one for the upstream: ${JSON.stringify(ds)}`);
  assert.ok(about.every((d) => d.severity === 3));
});

test("a second workflow(...) in a file is an error on it", async () => {
  const ds = await diagnose(
    "two.flow.ts",
    `import { workflow, shell } from "tideflow";\nexport const a = shell("a", "true");\nexport const w1 = workflow("first", { tasks: [a] });\nexport default workflow("second", { tasks: [a] });\n`,
  );
  const second = ds.filter((d) => d.code === "duplicate-workflow");
  assert.equal(second.length, 1, JSON.stringify(ds));
  assert.match(text(second[0]), /`w1` is a second `workflow\(\.\.\.\)` in this file; a workflow file holds one workflow, its default export \(`second`\)/);
  assert.equal(second[0].range.start.line, 2);
});

test("an entry of tasks that names no task constant says what it is", async () => {
  const ds = await diagnose(
    "names-nothing.flow.ts",
    `import { workflow, shell } from "tideflow";\nexport const a = shell("a", "true");\nconst helper = 5;\nexport default workflow("nothing", { tasks: [a, helper] });\n`,
  );
  const bad = ds.filter((d) => d.code === "invalid-option");
  assert.equal(bad.length, 1, JSON.stringify(ds));
  assert.match(text(bad[0]), /An entry of `tasks` must be a task constant of this file, and `helper` is not one/);
  assert.ok(!ds.some((d) => d.code === "unknown-upstream"), "it is not an upstream");
});

test("rename without newName is an error, not edits with no text", async () => {
  const source = `import { workflow, shell } from "tideflow";\nexport const a = shell("a", "true");\nexport default workflow("ren", { tasks: [a] });\n`;
  await diagnose("ren.flow.ts", source);
  const uri = uriOf(join(dir, "ren.flow.ts"));
  const position = positionOf(source, '"a"', 1);
  await assert.rejects(
    client.connection.sendRequest(RenameRequest.method, { textDocument: { uri }, position }),
    (e: Error & { code?: number }) => e.code === -32602 && /needs newName/.test(e.message),
  );
  const ok = (await client.connection.sendRequest(RenameRequest.method, { textDocument: { uri }, position, newName: "renamed" })) as { changes: Record<string, { newText: string }[]> };
  assert.ok(Object.values(ok.changes).flat().every((e) => e.newText === "renamed"));
});

test("params: names that are no environment variable, and two names that are one, are errors", async () => {
  const ds = await diagnose(
    "params.flow.ts",
    [
      `import { workflow, shell } from "tideflow";`,
      `export const a = shell("a", { params: { lower: "1", LOWER: "2", "min-rows": "5", "rows count": "3" } }, "true");`,
      `export const b = shell("b", { params: { Region: "eu" } }, "true");`,
      `export default workflow("params", { params: { region: "all", min_rows: "1" }, tasks: [a, b] });`,
      ``,
    ].join("\n"),
  );
  const bad = ds.filter((d) => d.code === "invalid-option").map(text).sort();
  assert.deepEqual(bad, [
    "Param name \"rows count\" is not one a shell task can see as $PARAM_ROWS_COUNT: names start with a letter or `_` and hold letters, digits, `_` and `-`.",
    "Params `lower` and `LOWER` are both $PARAM_LOWER in a shell task's environment: rename one.",
    "Params `min_rows` and `min-rows` are both $PARAM_MIN_ROWS in a shell task's environment: rename one.",
    "Params `region` and `Region` are both $PARAM_REGION in a shell task's environment: rename one.",
  ]);
});

test("quick fixes: the 'did you mean' of an upstream (in this file and in another workflow) and of an option", async () => {
  await diagnose("other.flow.ts", `import { workflow, shell } from "tideflow";\nexport const sync_accounts = shell("sync_accounts", "true");\nexport default workflow("crm_sync", { tasks: [sync_accounts] });\n`);
  const source = [
    `import { workflow, shell } from "tideflow";`,
    `export const transform = shell("transform", "true");`,
    `export const load = shell("load", { retires: 2, upstream: ["transfrom", "crm_sync.sync_acounts", "crm_synk.sync_accounts"] }, "true");`,
    `export default workflow("fixes", { tasks: [transform, load] });`,
    ``,
  ].join("\n");
  const uri = uriOf(join(dir, "fixes.flow.ts"));
  const waiting = client.waitForDiagnostics(uri, (d) => d.filter((x) => x.code === "unknown-upstream").length === 3);
  await client.open(uri, source);
  const ds = await waiting;
  const lines = source.split("\n");
  const apply = (edit: { range: Diagnostic["range"]; newText: string }) => {
    const l = lines[edit.range.start.line];
    return l.slice(0, edit.range.start.character) + edit.newText + l.slice(edit.range.end.character);
  };
  const actions = (await client.connection.sendRequest(CodeActionRequest.method, {
    textDocument: { uri },
    range: ds[0].range,
    context: { diagnostics: ds },
  })) as CodeAction[];
  const byTitle = new Map(actions.map((a) => [a.title, a]));
  const expected: [string, string][] = [
    ["Change to `transform`", `upstream: ["transform", "crm_sync.sync_acounts"`],
    ["Change to `crm_sync.sync_accounts`", `"crm_sync.sync_accounts", "crm_synk`],
    ["Change to `crm_sync.sync_accounts`", `"crm_sync.sync_accounts"] }`],
    ["Change to `retries`", `{ retries: 2,`],
  ];
  assert.equal(actions.length, 4, actions.map((a) => a.title).join(" | "));
  for (const a of actions) {
    assert.equal(a.kind, "quickfix");
    const edits = a.edit!.changes![uri];
    assert.equal(edits.length, 1);
    const after = apply(edits[0]);
    assert.ok(expected.some(([title, piece]) => title === a.title && after.includes(piece)), `${a.title}: ${after}`);
  }
  assert.ok(byTitle.has("Change to `transform`") && byTitle.has("Change to `retries`"));
  // A client that does not send `data` back gets the same fixes, found by code, start and message.
  const bare = ds.map(({ data: _data, ...rest }) => rest);
  const again = (await client.connection.sendRequest(CodeActionRequest.method, { textDocument: { uri }, range: ds[0].range, context: { diagnostics: bare } })) as CodeAction[];
  assert.deepEqual(again.map((a) => a.title).sort(), actions.map((a) => a.title).sort());
});

test("quick fix: a task constant missing from the workflow's tasks is added to them", async () => {
  for (const [name, list, want] of [
    ["missing.flow.ts", "[a]", "[a, b]"],
    ["missing-empty.flow.ts", "[]", "[b]"],
  ] as const) {
    const source = `import { workflow, shell } from "tideflow";\nexport const a = shell("a", "true");\nexport const b = shell("b", "true");\nexport default workflow("${name.replace(/\W/g, "_")}", { tasks: ${list} });\n`;
    const ds = await diagnose(name, source);
    const missing = ds.filter((d) => d.code === "task-not-in-workflow" && text(d).includes("`b`"));
    assert.equal(missing.length, 1, JSON.stringify(ds));
    const uri = uriOf(join(dir, name));
    const [action] = (await client.connection.sendRequest(CodeActionRequest.method, { textDocument: { uri }, range: missing[0].range, context: { diagnostics: missing } })) as CodeAction[];
    assert.match(action.title, /^Add `b` to the tasks of workflow /);
    const [edit] = action.edit!.changes![uri];
    const lines = source.split("\n");
    const l = lines[edit.range.start.line];
    assert.ok((l.slice(0, edit.range.start.character) + edit.newText + l.slice(edit.range.end.character)).includes(`tasks: ${want}`), JSON.stringify(edit));
  }
});
