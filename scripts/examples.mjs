// The main job for now: check the example workflows, show the broken one's diagnostics,
// and draw every example's DAG to examples/out/*.svg.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";

const cli = (args) => spawnSync(process.execPath, ["dist/cli.js", ...args], { stdio: "inherit" }).status;
const files = readdirSync("examples").filter((f) => f.endsWith(".flow.ts")).map((f) => `examples/${f}`);

console.log("== tideflow check (the example workspace)");
if (cli(["check", ...files, "--workspace", "examples"]) !== 0) process.exit(1);

console.log("\n== tideflow check examples/broken (errors on purpose: one of each kind)");
if (cli(["check", "examples/broken"]) !== 1) {
  console.error("expected the broken examples to fail the check");
  process.exit(1);
}

console.log("\n== tideflow dag");
for (const f of files) {
  const out = f.replace(/^examples\//, "examples/out/").replace(/\.flow\.ts$/, ".svg");
  if (cli(["dag", f, "--svg", out, "--workspace", "examples"]) !== 0) process.exit(1);
}
console.log("\n== tideflow test: one bizdate of daily_sales, with the runner (started in the background)");
const ex = (args) => cli([...args, "--workspace", "examples"]);
if (ex(["test", "examples/daily-sales.flow.ts", "--date", "2026-11-19"]) !== 0) process.exit(1);

console.log("\n== tideflow backfill: three bizdates, two at a time");
if (ex(["backfill", "examples/daily-sales.flow.ts", "--from", "2026-11-01", "--to", "2026-11-03", "--parallel", "2"]) !== 0) process.exit(1);

console.log("\n== tideflow runs");
ex(["runs"]);
ex(["runner", "stop"]);
console.log("\nState and logs are in examples/.tideflow/. README's \"Running workflows\" goes on from here.");
console.log("\nOpen the SVGs in examples/out/ in a browser, or the examples/ folder in an editor with the server attached (README).");
