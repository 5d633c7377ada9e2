/**
 * The runner commands start fast because they do not load the analyzer (TypeScript
 * inside): only check and dag need it, and dist/cli.js requires dist/cli-files.js for
 * them alone. What is asserted here is what the CLI process loads, recorded by a
 * `--require` preload; how fast it starts is a figure of `npm run bench -- cli`.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, before, test } from "node:test";
import { CLI } from "../runner/fixture";

/**
 * Preloaded into the CLI process: records every file Node compiles as CommonJS (the
 * bundle, anything it requires, a CommonJS module that an `import()` loads) with its
 * size, and writes them at exit to $TIDEFLOW_LOAD_PROBE. A static import of the analyzer
 * would be bundled into dist/cli.js itself, so the size counts as much as the names.
 */
const PROBE = `
const Module = require("node:module");
const { writeFileSync } = require("node:fs");
const compiled = [];
const compile = Module.prototype._compile;
Module.prototype._compile = function (content, filename) {
  compiled.push({ file: filename, bytes: Buffer.byteLength(content) });
  return compile.call(this, content, filename);
};
process.on("exit", () => {
  const cached = Object.keys(require.cache).filter((f) => !compiled.some((c) => c.file === f));
  writeFileSync(process.env.TIDEFLOW_LOAD_PROBE, JSON.stringify([...compiled, ...cached.map((file) => ({ file, bytes: 0 }))]));
});
`;

/** TypeScript alone is ~9 MB of JavaScript; the CLI's own entry is ~0.2 MB. */
const ANALYZER_BYTES = 2_000_000;
const ANALYZER_FILE = /(^|[\\/])(cli-files|analyze|server)\.js$|[\\/]node_modules[\\/]typescript[\\/]/;

let dir: string;
let probe: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "tideflow-startup-"));
  probe = join(dir, "probe.cjs");
  writeFileSync(probe, PROBE);
  writeFileSync(join(dir, "one.flow.ts"), `import { workflow, shell } from "tideflow";\nexport const a = shell("a", "true");\nexport default workflow("one", { tasks: [a] });\n`);
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the CLI with the probe; returns its exit code and the files it compiled. */
function loaded(args: string[]): { code: number | null; files: { file: string; bytes: number }[]; output: string } {
  const out = join(dir, `loaded-${args.join("_").replace(/\W/g, "")}.json`);
  const r = spawnSync(process.execPath, ["--require", probe, CLI, ...args], {
    cwd: dir,
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, TIDEFLOW_LOAD_PROBE: out },
  });
  assert.equal(r.error, undefined, `tideflow ${args.join(" ")}: ${r.error}`);
  return { code: r.status, files: JSON.parse(readFileSync(out, "utf8")), output: r.stdout + r.stderr };
}

const total = (files: { bytes: number }[]) => files.reduce((s, f) => s + f.bytes, 0);

test("runs, show, --help and --version do not load the analyzer", () => {
  // No runner runs here: `runs` and `show` answer "no runner" (exit 4) without a socket.
  for (const [args, code] of [[["runs"], 4], [["show", "1"], 4], [["--help"], 0], [["--version"], 0]] as const) {
    const r = loaded([...args]);
    const what = `tideflow ${args.join(" ")}`;
    assert.equal(r.code, code, `${what}: ${r.output}`);
    assert.ok(r.files.some((f) => f.file === CLI), `${what}: the probe saw dist/cli.js load: ${JSON.stringify(r.files)}`);
    const analyzer = r.files.filter((f) => ANALYZER_FILE.test(f.file));
    assert.deepEqual(analyzer, [], `${what} loaded the analyzer`);
    assert.ok(total(r.files) < ANALYZER_BYTES, `${what} compiled ${total(r.files)} bytes of JavaScript (${r.files.map((f) => `${basename(f.file)} ${f.bytes}`).join(", ")}): is the analyzer bundled into dist/cli.js?`);
  }
});

test("check does load it (so that the probe above can see it)", () => {
  const r = loaded(["check", "one.flow.ts"]);
  assert.equal(r.code, 0, r.output);
  assert.ok(r.files.some((f) => /[\\/]cli-files\.js$/.test(f.file)), JSON.stringify(r.files.map((f) => f.file)));
  assert.ok(total(r.files) >= ANALYZER_BYTES, `check compiled only ${total(r.files)} bytes`);
});
