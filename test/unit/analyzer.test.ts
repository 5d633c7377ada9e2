/** The analyzer as a pure function: text in, model and diagnostics out. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { analyzeFile } from "../../server/analyzer/analyze";
import { checkCron, nextFireTimes } from "../../common/cron";
import { isTimeZone, zonedIso } from "../../common/zone";
import { formatDuration, parseDuration } from "../../common/durations";
import { StatementCache } from "../../server/analyzer/parse";
import { WorkspaceIndex } from "../../server/analyzer/workspace";

const head = `import { workflow, task, shell } from "tideflow";\n`;
const codes = (text: string) => analyzeFile("file:///w.flow.ts", text).diagnostics.map((d) => d.code).sort();

describe("durations", () => {
  test("units and compounds", () => {
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("30s"), 30_000);
    assert.equal(parseDuration("10m"), 600_000);
    assert.equal(parseDuration("2h"), 7_200_000);
    assert.equal(parseDuration("1h30m"), 5_400_000);
    assert.equal(parseDuration("1.5s"), 1_500);
  });
  test("rejects what is not a duration", () => {
    for (const bad of ["", "10", "10 minutes", "m", "5x", "-1s", "1h 30m", "soon"]) assert.equal(parseDuration(bad), undefined, bad);
  });
  test("formats for people", () => {
    assert.equal(formatDuration(250), "250ms");
    assert.equal(formatDuration(5_400_000), "1h30m");
  });
});

describe("cron and dates", () => {
  test("5 or 6 fields, each field checked (test/unit/messages.test.ts has the messages)", () => {
    assert.equal(checkCron("30 2 * * *"), undefined);
    assert.equal(checkCron("0 30 2 * * *"), undefined);
    assert.match(checkCron("* * *")!, /expected 5 fields .* got 3/);
    assert.match(checkCron("61 * * * *")!, /minutes go from 0 to 59/);
  });
  test("IANA zones only", () => {
    assert.ok(isTimeZone("Asia/Shanghai"));
    assert.ok(isTimeZone("UTC"));
    assert.ok(!isTimeZone("Asia/Beijing"));
    assert.ok(!isTimeZone("+08:00"));
  });
  test("fire times in the workflow's zone; bizdate is the fire date minus one day", () => {
    const from = new Date("2026-11-19T20:00:00Z"); // 04:00 on Nov 20 in Shanghai
    const fires = nextFireTimes("30 2 * * *", "Asia/Shanghai", 3, from);
    assert.deepEqual(fires, [
      { cyctime: "2026-11-21T02:30:00+08:00", bizdate: "2026-11-20" },
      { cyctime: "2026-11-22T02:30:00+08:00", bizdate: "2026-11-21" },
      { cyctime: "2026-11-23T02:30:00+08:00", bizdate: "2026-11-22" },
    ]);
    // Month and year boundaries.
    assert.equal(nextFireTimes("0 0 1 1 *", "UTC", 1, from)[0].bizdate, "2026-12-31");
    assert.equal(zonedIso(new Date("2026-03-29T01:30:00Z"), "Europe/Berlin"), "2026-03-29T03:30:00+02:00");
  });
});

describe("analyzeFile", () => {
  test("reads the model: tasks, options, upstreams in all three forms", () => {
    const r = analyzeFile("file:///s.flow.ts", `${head}
export const a = task("a", { retries: 3, retryDelay: "1m", timeout: 90000, params: { REGION: "cn" }, description: "first" }, async () => {});
export const b = shell("b", { upstream: [a] }, "echo $BIZDATE");
export const c = task("c", { upstream: ["b", "other.x"] }, async () => {});
export default workflow("s", { schedule: "0 * * * *", timezone: "UTC", concurrency: 2, tasks: [a, b, c] });
`);
    assert.deepEqual(r.diagnostics, []);
    const wf = r.workflow!;
    assert.equal(wf.id, "s");
    assert.equal(wf.concurrency, 2);
    const [a, b, c] = wf.tasks;
    assert.deepEqual([a.retries, a.retryDelayMs, a.timeoutMs, a.params, a.description], [3, 60_000, 90_000, { REGION: "cn" }, "first"]);
    assert.equal(b.kind, "shell");
    assert.equal(b.command, "echo $BIZDATE");
    assert.deepEqual(b.upstream.map((u) => [u.form, u.task]), [["identifier", "a"]]);
    assert.deepEqual(c.upstream.map((u) => [u.form, u.workflow, u.task]), [["string", undefined, "b"], ["string", "other", "x"]]);
    // The task part of "other.x" is what rename edits.
    assert.equal(c.upstream[1].taskRange.start.character - c.upstream[1].range.start.character, 7);
  });

  test("imports can be renamed", () => {
    const r = analyzeFile("file:///s.flow.ts", `import { workflow as wf, task as t } from "tideflow";\nexport const a = t("a", async () => {});\nexport default wf("s", { tasks: [a] });\n`);
    assert.deepEqual(r.diagnostics, []);
    assert.equal(r.workflow!.tasks[0].id, "a");
  });

  test("the default export may be a workflow constant", () => {
    const r = analyzeFile("file:///s.flow.ts", `${head}const a = task("a", async () => {});\nconst wf = workflow("s", { tasks: [a] });\nexport default wf;\n`);
    assert.equal(r.workflow?.id, "s");
  });

  test("a workflow that is not the default export gets missing-workflow with a hint", () => {
    const r = analyzeFile("file:///s.flow.ts", `${head}export const wf = workflow("s", { tasks: [] });\n`);
    assert.equal(r.diagnostics[0].code, "missing-workflow");
    assert.match(r.diagnostics[0].message, /export default wf/);
  });

  test("option types and ranges", () => {
    assert.deepEqual(codes(`${head}export const a = task("a", { retries: 1.5 }, async () => {});\nexport default workflow("s", { tasks: [a] });`), ["invalid-option"]);
    assert.deepEqual(codes(`${head}export const a = task("a", { params: { X: 1 } }, async () => {});\nexport default workflow("s", { tasks: [a] });`), ["invalid-option"]);
    assert.deepEqual(codes(`${head}export const a = task("a", { timeout: -5 }, async () => {});\nexport default workflow("s", { tasks: [a] });`), ["invalid-duration"]);
    assert.deepEqual(codes(`${head}export const a = task("a", async () => {});\nexport default workflow("s", { tasks: [a], cron: "x" });`), ["invalid-option"]);
    assert.deepEqual(codes(`${head}export default workflow("s", { schedule: "*/5 * * *", tasks: [] });`), ["invalid-cron"]);
    assert.deepEqual(codes(`${head}export default workflow("s", { schedule: 5, tasks: [] });`), ["invalid-option"]);
    assert.deepEqual(codes(`${head}export default workflow("s");`), ["invalid-option"]);
    assert.deepEqual(codes(`${head}const opts = {};\nexport default workflow("s", opts);`), ["not-static"]);
    assert.deepEqual(codes(`${head}export default workflow(\`s\${1}\`, { tasks: [] });`), ["not-static"]);
    assert.deepEqual(codes(`${head}export const a = shell("a", { retries: 1 });\nexport default workflow("s", { tasks: [a] });`), ["invalid-option"]);
  });

  test("cron is checked in the workflow's timezone, wherever timezone is written", () => {
    assert.deepEqual(codes(`${head}export default workflow("s", { schedule: "0 2 * * *", timezone: "Europe/Berlin", tasks: [] });`), []);
    assert.deepEqual(codes(`${head}export default workflow("s", { timezone: "Nowhere/Land", schedule: "0 2 * * *", tasks: [] });`), ["invalid-timezone"]);
  });

  test("a syntax error in one task leaves the rest of the file analyzed", () => {
    const r = analyzeFile("file:///s.flow.ts", `${head}
export const a = task("a", { upstream: [ }, async () => {});
export const b = task("b", { timeout: "never" }, async () => {});
export default workflow("s", { tasks: [a, b] });
`);
    assert.deepEqual(r.diagnostics.map((d) => d.code).sort(), ["invalid-duration", "parse-error"]);
    assert.equal(r.workflow?.id, "s");
  });

  test("the statement cache gives the same result as a fresh parse, and only holds the current statements", () => {
    const cache = new StatementCache();
    const v1 = `${head}export const a = task("a", { timeout: "1m" }, async () => {});\nexport default workflow("s", { tasks: [a] });\n`;
    const v2 = v1.replace('"1m"', '"1 m"');
    analyzeFile("file:///s.flow.ts", v1, { cache });
    const cached = analyzeFile("file:///s.flow.ts", v2, { cache });
    const fresh = analyzeFile("file:///s.flow.ts", v2);
    assert.deepEqual(cached, fresh);
    assert.equal(cache.chunks.size, 3);
  });

  test("incremental reparse: after each of 300 random edits, the cached analysis equals a fresh one", () => {
    let text = readFileSync(join(__dirname, "../../examples/daily-sales.flow.ts"), "utf8");
    const cache = new StatementCache();
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const tokens = ["(", ")", "{", "}", "[", "]", '"', "'", ",", ":", "\n", "upstream: [", 'task("x", ', "export default ", "// ", "/*", "*/", "`", "é", "\u0000"];
    for (let i = 0; i < 300; i++) {
      const at = rand(text.length + 1);
      const kind = rand(3);
      if (kind === 0) text = text.slice(0, at) + tokens[rand(tokens.length)].replace("\\n", "\n") + text.slice(at);
      else if (kind === 1) text = text.slice(0, at) + text.slice(Math.min(text.length, at + rand(40)));
      else {
        const from = rand(text.length + 1);
        text = text.slice(0, at) + text.slice(from, from + rand(60)) + text.slice(at);
      }
      assert.deepEqual(analyzeFile("file:///s.flow.ts", text, { cache }), analyzeFile("file:///s.flow.ts", text), `edit ${i}`);
    }
  });

  test("hostile input: empty, binary, deep nesting, huge", () => {
    assert.deepEqual(codes(""), ["missing-workflow"]);
    const junk = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)).toString("latin1");
    assert.ok(analyzeFile("file:///j.flow.ts", junk).diagnostics.length > 0);
    const deep = `${head}export default workflow("s", { tasks: [] });\nconst z = ${"(".repeat(10_000)}1${")".repeat(10_000)};\n`;
    assert.ok(analyzeFile("file:///d.flow.ts", deep).diagnostics.some((d) => d.code === "parse-error"));
    const deepArray = `${head}export default workflow("s", { tasks: [], params: ${"[".repeat(10_000)}${"]".repeat(10_000)} });\n`;
    assert.doesNotThrow(() => analyzeFile("file:///d.flow.ts", deepArray));
    const big = "x".repeat(3 * 1024 * 1024);
    const r = analyzeFile("file:///b.flow.ts", big, { maxFileSize: 2 * 1024 * 1024 });
    assert.deepEqual(r.diagnostics.map((d) => d.code), ["file-too-large"]);
  });
});

describe("WorkspaceIndex", () => {
  const file = (uri: string, text: string) => analyzeFile(uri, `${head}${text}`);

  test("cycles across three workflows are reported on each edge with the whole path", () => {
    const index = new WorkspaceIndex();
    index.set(file("file:///a.flow.ts", `export const x = task("x", { upstream: ["c.z"] }, async () => {});\nexport default workflow("a", { tasks: [x] });`));
    index.set(file("file:///b.flow.ts", `export const y = task("y", { upstream: ["a.x"] }, async () => {});\nexport default workflow("b", { tasks: [y] });`));
    index.set(file("file:///c.flow.ts", `export const z = task("z", { upstream: ["b.y"] }, async () => {});\nexport default workflow("c", { tasks: [z] });`));
    for (const uri of ["file:///a.flow.ts", "file:///b.flow.ts", "file:///c.flow.ts"]) {
      const ds = index.diagnostics(uri);
      assert.equal(ds.length, 1, uri);
      assert.equal(ds[0].code, "cycle");
      assert.match(ds[0].message, /^Dependency cycle: (\w\.\w) → (\w\.\w) → (\w\.\w) → \1\.$/);
    }
    index.set(file("file:///c.flow.ts", `export const z = task("z", async () => {});\nexport default workflow("c", { tasks: [z] });`));
    assert.deepEqual(index.diagnostics("file:///a.flow.ts"), []);
  });

  test("a self-dependency is a cycle", () => {
    const index = new WorkspaceIndex();
    index.set(file("file:///a.flow.ts", `export const x = task("x", { upstream: ["x"] }, async () => {});\nexport default workflow("a", { tasks: [x] });`));
    assert.match(index.diagnostics("file:///a.flow.ts")[0].message, /x → x/);
  });

  test("a 10,000-task chain does not overflow the cycle search", () => {
    const n = 10_000;
    let text = "";
    for (let i = 0; i < n; i++) text += `export const t${i} = task("t${i}", { upstream: [${i ? `"t${i - 1}"` : `"t${n - 1}"`}] }, async () => {});\n`;
    text += `export default workflow("big", { tasks: [${Array.from({ length: n }, (_, i) => `t${i}`).join(", ")}] });`;
    const index = new WorkspaceIndex();
    index.set(file("file:///big.flow.ts", text));
    const cycles = index.diagnostics("file:///big.flow.ts").filter((d) => d.code === "cycle");
    assert.equal(cycles.length, n);
    assert.match(cycles[0].message, /→ … 9990 more … →/);
    assert.ok(cycles[0].message.length < 200);
  });

  test("graph: external nodes for other workflows' tasks", () => {
    const index = new WorkspaceIndex();
    index.set(file("file:///a.flow.ts", `export const x = task("x", async () => {});\nexport default workflow("a", { tasks: [x] });`));
    index.set(file("file:///b.flow.ts", `export const y = task("y", { upstream: ["a.x"] }, async () => {});\nexport default workflow("b", { tasks: [y] });`));
    assert.deepEqual(index.graph("b"), {
      workflow: "b",
      nodes: [{ id: "y", label: "y", kind: "task" }, { id: "a.x", label: "a.x", kind: "external" }],
      edges: [{ from: "a.x", to: "y" }],
    });
  });
});
