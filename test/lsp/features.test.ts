/** Every language-server feature, through the real server over stdio. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  CodeLensRequest,
  CompletionRequest,
  DefinitionRequest,
  DidChangeWatchedFilesNotification,
  DocumentSymbolRequest,
  FileChangeType,
  FoldingRangeRequest,
  HoverRequest,
  PrepareRenameRequest,
  ReferencesRequest,
  RenameRequest,
  type CompletionItem,
  type Diagnostic,
  type DocumentSymbol,
  type Hover,
  type Location,
  type WorkspaceEdit,
} from "vscode-languageserver-protocol";
import { DagRequest, DagSvgRequest, WorkflowsRequest } from "../../protocol/lsp";
import { LspClient, positionOf, uriOf } from "./harness";

const SALES = `import { workflow, task, shell } from "tideflow";

export const extract = task("extract", { retries: 2, retryDelay: "30s", timeout: "10m" }, async (ctx) => {
  ctx.log.info(ctx.bizdate);
});

export const load = shell("load", { upstream: [extract], timeout: "5m" }, "echo $BIZDATE");

export const report = task("report", { upstream: ["load", "crm.sync_accounts"], description: "Daily report" },
  async () => {},
);

export default workflow("daily_sales", {
  schedule: "30 2 * * *",
  timezone: "Asia/Shanghai",
  concurrency: 4,
  tasks: [extract, load, report],
});
`;

const CRM = `import { workflow, task } from "tideflow";

export const sync_accounts = task("sync_accounts", async () => {});
export const sync_leads = task("sync_leads", { upstream: ["sync_accounts"] }, async () => {});

export default workflow("crm", { schedule: "0 1 * * *", timezone: "UTC", tasks: [sync_accounts, sync_leads] });
`;

let dir: string;
let client: LspClient;
let salesUri: string;
let crmUri: string;

const codes = (ds: Diagnostic[]) => ds.map((d) => d.code).sort();
const msg = (d: Diagnostic | undefined): string => (typeof d?.message === "string" ? d.message : d?.message.value ?? "");

function textAt(text: string, r: Diagnostic["range"]): string {
  const lines = text.split("\n");
  assert.equal(r.start.line, r.end.line, "expected a one-line range");
  return lines[r.start.line].slice(r.start.character, r.end.character);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tideflow-lsp-"));
  writeFileSync(join(dir, "daily-sales.flow.ts"), SALES);
  writeFileSync(join(dir, "crm.flow.ts"), CRM);
  salesUri = uriOf(join(dir, "daily-sales.flow.ts"));
  crmUri = uriOf(join(dir, "crm.flow.ts"));
  client = await LspClient.start({ root: dir });
  // Workspace indexing publishes for files that are not open, too.
  await client.diagnosticsFor(crmUri);
});

after(async () => {
  await client.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("diagnostics", () => {
  test("a clean workflow has none, including its cross-workflow upstream", async () => {
    await client.open(salesUri, SALES);
    const ds = await client.waitForDiagnostics(salesUri);
    assert.deepEqual(ds, []);
  });

  test("each code, with source tideflow and the range on the offending literal", async () => {
    const uri = uriOf(join(dir, "bad.flow.ts"));
    const text = `import { workflow, task, shell } from "tideflow";
const tenMinutes = "10m";
export const a = task("a", { retries: -1, timeout: "10 minutes", colour: "red" }, async () => {});
export const b = shell("b b", { upstream: ["a", "nope", "crm.nope", "ghost.x"], retryDelay: tenMinutes }, "true");
export const c = task("c", { upstream: ["d"] }, async () => {});
export const d = task("d", { upstream: [c] }, async () => {});
export const a2 = task("a", async () => {});
export const orphan = task("orphan", async () => {});
export default workflow("bad_one", { schedule: "61 * * * *", timezone: "Mars/Olympus", concurrency: 0, tasks: [a, b, c, d, a2] });
`;
    await client.open(uri, text);
    const ds = await client.waitForDiagnostics(uri, (d) => d.length > 0);
    assert.ok(ds.every((d) => d.source === "tideflow"));
    const byCode = (code: string) => ds.filter((d) => d.code === code).map((d) => textAt(text, d.range));
    assert.deepEqual(byCode("invalid-option").sort(), ["-1", "0", "colour"]);
    assert.deepEqual(byCode("invalid-duration"), ['"10 minutes"']);
    assert.deepEqual(byCode("invalid-id"), ['"b b"']);
    assert.deepEqual(byCode("unknown-upstream").sort(), ['"crm.nope"', '"ghost.x"', '"nope"']);
    assert.deepEqual(byCode("cycle").sort(), ['"d"', "c"]);
    assert.match(msg(ds.find((d) => d.code === "cycle")), /(c → d → c|d → c → d)/);
    assert.deepEqual(byCode("duplicate-task"), ['"a"', '"a"']);
    assert.deepEqual(byCode("invalid-cron"), ['"61 * * * *"']);
    assert.match(msg(ds.find((d) => d.code === "invalid-cron")), /59/);
    assert.deepEqual(byCode("invalid-timezone"), ['"Mars/Olympus"']);
    assert.deepEqual(byCode("not-static"), ["tenMinutes"]);
    assert.deepEqual(byCode("task-not-in-workflow"), ['"orphan"']);
    assert.equal(ds.find((d) => d.code === "task-not-in-workflow")!.severity, 2);
    assert.equal(ds.find((d) => d.code === "not-static")!.severity, 3);
    await client.close(uri);
  });

  test("parse-error and missing-workflow", async () => {
    const uri = uriOf(join(dir, "half.flow.ts"));
    await client.open(uri, `import { task } from "tideflow";\nexport const a = task("a", { upstream: [ }, async () => {});\n`);
    let ds = await client.waitForDiagnostics(uri);
    assert.deepEqual(codes(ds), ["parse-error"]);
    assert.equal(ds[0].range.start.line, 1);
    await client.change(uri, [{ text: `import { task } from "tideflow";\nexport const a = task("a", async () => {});\n` }]);
    ds = await client.waitForDiagnostics(uri);
    assert.deepEqual(codes(ds), ["missing-workflow"]);
    await client.close(uri);
  });

  test("cross-file checks are re-published for every affected file", async () => {
    const aUri = uriOf(join(dir, "ping.flow.ts"));
    const bUri = uriOf(join(dir, "pong.flow.ts"));
    const ping = `import { workflow, task } from "tideflow";\nexport const p = task("p", { upstream: ["pong.q"] }, async () => {});\nexport default workflow("ping", { tasks: [p] });\n`;
    const pong = `import { workflow, task } from "tideflow";\nexport const q = task("q", { upstream: ["ping.p"] }, async () => {});\nexport default workflow("pong", { tasks: [q] });\n`;
    await client.open(aUri, ping);
    // pong does not exist yet: unknown workflow.
    let a = await client.waitForDiagnostics(aUri);
    assert.deepEqual(codes(a), ["unknown-upstream"]);
    assert.match(msg(a[0]), /no workflow `pong`/);
    const aCycle = client.waitForDiagnostics(aUri, (d) => d.some((x) => x.code === "cycle"));
    await client.open(bUri, pong);
    const b = await client.waitForDiagnostics(bUri, (d) => d.some((x) => x.code === "cycle"));
    a = await aCycle;
    assert.match(msg(a[0]), /ping\.p → pong\.q → ping\.p|pong\.q → ping\.p → pong\.q/);
    assert.match(msg(b[0]), /→/);
    // Break the cycle in pong: ping's diagnostic goes away without ping being touched.
    const aClean = client.waitForDiagnostics(aUri, (d) => d.length === 0);
    await client.change(bUri, [{ range: { start: positionOf(pong, '"ping.p"'), end: positionOf(pong, '"ping.p"', 8) }, text: "" }]);
    await aClean;
    // Same workflow id as crm.flow.ts on disk: both get duplicate-workflow.
    const dupUri = uriOf(join(dir, "crm-copy.flow.ts"));
    const crmDup = client.waitForDiagnostics(crmUri, (d) => d.some((x) => x.code === "duplicate-workflow"));
    await client.open(dupUri, CRM);
    const dup = await client.waitForDiagnostics(dupUri, (d) => d.some((x) => x.code === "duplicate-workflow"));
    assert.match(msg(dup.find((d) => d.code === "duplicate-workflow")), /crm\.flow\.ts/);
    await crmDup;
    const crmClean = client.waitForDiagnostics(crmUri, (d) => d.length === 0);
    await client.close(dupUri); // not on disk: leaves the index
    await crmClean;
    await client.close(aUri);
    await client.close(bUri);
  });

  test("files changed on disk are re-indexed", async () => {
    const path = join(dir, "later.flow.ts");
    const uri = uriOf(path);
    writeFileSync(path, `import { workflow, task } from "tideflow";\nexport const z = task("z", { upstream: ["daily_sales.nothing"] }, async () => {});\nexport default workflow("later", { tasks: [z] });\n`);
    const ds = client.waitForDiagnostics(uri, (d) => d.length === 1);
    await client.connection.sendNotification(DidChangeWatchedFilesNotification.type, { changes: [{ uri, type: FileChangeType.Created }] });
    assert.match(msg((await ds)[0]), /has no task `nothing`/);
    rmSync(path);
    const gone = client.waitForDiagnostics(uri, (d) => d.length === 0);
    await client.connection.sendNotification(DidChangeWatchedFilesNotification.type, { changes: [{ uri, type: FileChangeType.Deleted }] });
    await gone;
  });
});

describe("editor features", () => {
  test("hover on the schedule: words and the next 5 fire times with bizdates", async () => {
    const h = (await client.connection.sendRequest(HoverRequest.type, { textDocument: { uri: salesUri }, position: positionOf(SALES, "30 2 * * *", 2) })) as Hover;
    const md = (h.contents as { value: string }).value;
    assert.match(md, /At 02:30/);
    assert.match(md, /Asia\/Shanghai/);
    const rows = md.split("\n").filter((l) => /^\| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+08:00 \| \d{4}-\d\d-\d\d \|$/.test(l));
    assert.equal(rows.length, 5);
    for (const row of rows) {
      const [, cyc, biz] = /^\| (\S+) \S+ \| (\S+) \|$/.exec(row)!;
      const expected = new Date(`${cyc}T00:00:00Z`);
      expected.setUTCDate(expected.getUTCDate() - 1);
      assert.equal(biz, expected.toISOString().slice(0, 10));
      assert.ok(row.includes("02:30:00+08:00"));
    }
  });

  test("hover on a task: upstream, downstream, retries, timeout", async () => {
    const h = (await client.connection.sendRequest(HoverRequest.type, { textDocument: { uri: salesUri }, position: positionOf(SALES, '"extract"', 2) })) as Hover;
    const md = (h.contents as { value: string }).value;
    assert.match(md, /upstream: none/);
    assert.match(md, /downstream: `load`/);
    assert.match(md, /retries: 2, 30s apart/);
    assert.match(md, /timeout: 10m/);
    // Hover on a cross-workflow upstream names the task of the other workflow.
    const h2 = (await client.connection.sendRequest(HoverRequest.type, { textDocument: { uri: salesUri }, position: positionOf(SALES, "crm.sync_accounts", 5) })) as Hover;
    assert.match((h2.contents as { value: string }).value, /`sync_accounts` in workflow `crm`[\s\S]*downstream: .*`daily_sales\.report`/);
  });

  test("completion of task ids inside upstream strings, also on half-typed code", async () => {
    const uri = uriOf(join(dir, "typing.flow.ts"));
    const text = `import { workflow, task } from "tideflow";\nexport const one = task("one", async () => {});\nexport const two = task("two", { upstream: ["` ;
    await client.open(uri, text);
    await client.waitForDiagnostics(uri);
    const end = positionOf(text, 'upstream: ["', 12);
    const items = (await client.connection.sendRequest(CompletionRequest.type, { textDocument: { uri }, position: end })) as CompletionItem[];
    const labels = items.map((i) => i.label);
    assert.ok(labels.includes("one"), labels.join());
    assert.ok(labels.includes("crm.sync_accounts"));
    assert.ok(labels.includes("daily_sales.report"));
    await client.change(uri, [{ range: { start: end, end }, text: "crm." }]);
    const after = { line: end.line, character: end.character + 4 };
    const crmOnly = (await client.connection.sendRequest(CompletionRequest.type, { textDocument: { uri }, position: after })) as CompletionItem[];
    assert.deepEqual(crmOnly.map((i) => i.label).sort(), ["crm.sync_accounts", "crm.sync_leads"]);
    // Outside an upstream list: nothing.
    const none = (await client.connection.sendRequest(CompletionRequest.type, { textDocument: { uri }, position: positionOf(text, '"one"', 1) })) as CompletionItem[];
    assert.deepEqual(none, []);
    await client.close(uri);
  });

  test("completion in upstream offers only tasks that can be upstream: not itself, its downstream, listed, invalid or repeated ids", async () => {
    const uri = uriOf(join(dir, "compl.flow.ts"));
    const text = [
      `import { workflow, task } from "tideflow";`,
      `export const a = task("a", async () => {});`,
      `export const b = task("b", { upstream: ["a", ""] }, async () => {});`,
      `export const c = task("c", { upstream: ["b"] }, async () => {});`,
      `export const e = task("e", { upstream: [c] }, async () => {});`,
      `export const d = task("d", async () => {});`,
      `export const d2 = task("d", async () => {});`,
      `export const bad = task("2nd load", async () => {});`,
      `export default workflow("compl", { tasks: [a, b, c, e, d, d2, bad] });`,
      ``,
    ].join("\n");
    await client.open(uri, text);
    await client.waitForDiagnostics(uri);
    const at = positionOf(text, '["a", ""', 7);
    const items = (await client.connection.sendRequest(CompletionRequest.type, { textDocument: { uri }, position: at })) as CompletionItem[];
    const labels = items.map((i) => i.label);
    const same = labels.filter((l) => !l.includes("."));
    assert.deepEqual(same, ["d"], "a is listed, b is itself, c and e are downstream (a cycle), d once, 2nd load is not an id");
    assert.equal(new Set(labels).size, labels.length, `no label twice: ${labels.join()}`);
    assert.ok(labels.includes("crm.sync_accounts"), labels.join());
    assert.ok(!labels.some((l) => l.startsWith("compl.")), "its own workflow is not offered as workflow.task");
    const rank = (l: string) => items.find((i) => i.label === l)!.sortText!;
    assert.ok(rank("d") < rank("crm.sync_accounts"), "same-workflow tasks first");
    await client.close(uri);
  });

  test("definition and references of a task id across files", async () => {
    await client.openFile(join(dir, "crm.flow.ts"));
    const def = (await client.connection.sendRequest(DefinitionRequest.type, { textDocument: { uri: salesUri }, position: positionOf(SALES, "crm.sync_accounts", 6) })) as Location;
    assert.equal(def.uri, crmUri);
    assert.equal(textAt(CRM, def.range), '"sync_accounts"');
    const refs = (await client.connection.sendRequest(ReferencesRequest.type, { textDocument: { uri: crmUri }, position: positionOf(CRM, '"sync_accounts"', 3), context: { includeDeclaration: true } })) as Location[];
    const where = refs.map((r) => `${r.uri === crmUri ? "crm" : "sales"}:${textAt(r.uri === crmUri ? CRM : SALES, r.range)}`).sort();
    assert.deepEqual(where, ['crm:"sync_accounts"', 'crm:"sync_accounts"', 'sales:"crm.sync_accounts"']);
  });

  test("rename edits every use as a string, across files, and refuses bad ids", async () => {
    const prep = (await client.connection.sendRequest(PrepareRenameRequest.type, { textDocument: { uri: crmUri }, position: positionOf(CRM, '"sync_accounts"', 2) })) as { range: Diagnostic["range"]; placeholder: string };
    assert.equal(prep.placeholder, "sync_accounts");
    assert.equal(textAt(CRM, prep.range), "sync_accounts");
    const edit = (await client.connection.sendRequest(RenameRequest.type, { textDocument: { uri: crmUri }, position: positionOf(CRM, '"sync_accounts"', 2), newName: "accounts" })) as WorkspaceEdit;
    const changes = edit.changes!;
    assert.equal(changes[crmUri].length, 2);
    for (const e of changes[crmUri]) assert.equal(textAt(CRM, e.range), "sync_accounts");
    assert.equal(changes[salesUri].length, 1);
    assert.equal(textAt(SALES, changes[salesUri][0].range), "sync_accounts", "only the task part of crm.sync_accounts");
    await assert.rejects(
      client.connection.sendRequest(RenameRequest.type, { textDocument: { uri: crmUri }, position: positionOf(CRM, '"sync_accounts"', 2), newName: "has space" }),
      /not a valid task id/,
    );
    await assert.rejects(
      client.connection.sendRequest(RenameRequest.type, { textDocument: { uri: crmUri }, position: positionOf(CRM, '"sync_accounts"', 2), newName: "sync_leads" }),
      /already has a task/,
    );
  });

  test("document symbols, folding and code lenses", async () => {
    const symbols = (await client.connection.sendRequest(DocumentSymbolRequest.type, { textDocument: { uri: salesUri } })) as DocumentSymbol[];
    assert.equal(symbols.length, 1);
    assert.equal(symbols[0].name, "daily_sales");
    assert.deepEqual(symbols[0].children!.map((s) => s.name), ["extract", "load", "report"]);
    const folds = await client.connection.sendRequest(FoldingRangeRequest.type, { textDocument: { uri: salesUri } });
    assert.ok(folds!.some((f) => f.startLine === 2 && f.endLine === 4), JSON.stringify(folds));
    const lenses = (await client.connection.sendRequest(CodeLensRequest.type, { textDocument: { uri: salesUri } }))!;
    assert.equal(lenses.length, 3 * 4);
    const cmds = new Set(lenses.map((l) => l.command!.command));
    assert.deepEqual([...cmds].sort(), ["tideflow.backfill", "tideflow.showDag", "tideflow.test"]);
    const forLoad = lenses.filter((l) => (l.command!.arguments![0] as { task?: string }).task === "load");
    assert.equal(forLoad.length, 3);
    assert.deepEqual(forLoad[0].command!.arguments![0], { uri: salesUri, workflow: "daily_sales", task: "load" });
    assert.equal(forLoad[0].range.start.line, 6);
  });

  test("a file with errors gets no run lenses: the error count, which opens Problems, and Show DAG", async () => {
    const uri = uriOf(join(dir, "erring.flow.ts"));
    const text = [
      `import { workflow, task } from "tideflow";`,
      `export const a = task("a", { upstream: ["b"], timeout: "soon" }, async () => {});`,
      `export const b = task("b", { upstream: ["a"] }, async () => {});`,
      `export default workflow("erring", { tasks: [a, b] });`,
      ``,
    ].join("\n");
    await client.open(uri, text);
    await client.waitForDiagnostics(uri, (d) => d.some((x) => x.code === "cycle"));
    const lenses = (await client.connection.sendRequest(CodeLensRequest.type, { textDocument: { uri } }))!;
    const titles = lenses.map((l) => l.command!.title);
    // invalid-duration, and the cycle on each of its two upstream entries: 3 errors.
    assert.deepEqual(titles.filter((t) => !t.startsWith("Show DAG")), Array(3).fill("⚠ 3 errors in this file: fix them to run"));
    assert.equal(titles.filter((t) => t === "Show DAG").length, 3);
    assert.ok(!lenses.some((l) => l.command!.command === "tideflow.test" || l.command!.command === "tideflow.backfill"));
    assert.ok(lenses.filter((l) => l.command!.title.startsWith("⚠")).every((l) => l.command!.command === "workbench.actions.view.problems"));
    await client.close(uri);
  });
});

describe("custom requests", () => {
  test("tideflow/workflows lists every workflow with tasks, edges and diagnostics count", async () => {
    const { workflows } = await client.connection.sendRequest(WorkflowsRequest, {});
    const sales = workflows.find((w) => w.id === "daily_sales")!;
    assert.equal(sales.schedule, "30 2 * * *");
    assert.deepEqual(sales.tasks.map((t) => t.id), ["extract", "load", "report"]);
    assert.deepEqual(sales.edges, [
      { from: "extract", to: "load" },
      { from: "load", to: "report" },
      { from: "crm.sync_accounts", to: "report" },
    ]);
    assert.deepEqual(sales.diagnostics, { errors: 0, warnings: 0 });
    assert.equal(sales.scheduleInvalid, undefined);
    assert.ok(workflows.some((w) => w.id === "crm"));
  });

  test("tideflow/workflows marks a schedule that is not a valid cron", async () => {
    const uri = uriOf(join(dir, "badcron.flow.ts"));
    await client.open(uri, `import { workflow, task } from "tideflow";\nexport const a = task("a", async () => {});\nexport default workflow("badcron", { schedule: "61 * * * *", tasks: [a] });\n`);
    await client.waitForDiagnostics(uri, (d) => d.some((x) => x.code === "invalid-cron"));
    const { workflows } = await client.connection.sendRequest(WorkflowsRequest, {});
    const bad = workflows.find((w) => w.id === "badcron")!;
    assert.equal(bad.scheduleInvalid, true);
    assert.equal(bad.schedule, undefined);
    await client.close(uri);
  });

  test("tideflow/dag lays out left to right; tideflow/dagSvg draws it", async () => {
    const layout = (await client.connection.sendRequest(DagRequest, { workflow: "daily_sales" }))!;
    const byId = new Map(layout.nodes.map((n) => [n.id, n]));
    assert.equal(byId.get("crm.sync_accounts")!.kind, "external");
    for (const e of layout.edges) {
      const from = byId.get(e.from)!;
      const to = byId.get(e.to)!;
      assert.ok(from.x + from.width <= to.x, `${e.from} left of ${e.to}`);
      assert.ok(e.points.length >= 2);
    }
    const byUri = (await client.connection.sendRequest(DagRequest, { uri: salesUri }))!;
    assert.equal(byUri.workflow, "daily_sales");
    const { svg } = (await client.connection.sendRequest(DagSvgRequest, { workflow: "daily_sales" }))!;
    assert.match(svg, /^<\?xml|^<svg/);
    assert.equal((svg.match(/class="node /g) ?? []).length, 4);
    assert.equal(await client.connection.sendRequest(DagRequest, { workflow: "no_such" }), null);
  });
});
