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
console.log("\nOpen the SVGs in examples/out/ in a browser, or the examples/ folder in an editor with the server attached (README).");
