/**
 * The runner commands start about as fast as Node itself: they do not load the analyzer
 * (TypeScript inside), which only check and dag need. Wall time of real processes, the
 * two kinds interleaved so that a busy machine slows both alike.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { CLI } from "../runner/fixture";

function wallMs(args: string[], cwd: string): number {
  const start = process.hrtime.bigint();
  spawnSync(process.execPath, args, { cwd, stdio: "ignore" });
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

test("runs, show, --help and --version start within 1.5× of `node -e 0`", () => {
  // No runner runs here: `runs` and `show` answer "no runner" (exit 4) without a socket,
  // so what is measured is the CLI's own start.
  const dir = mkdtempSync(join(tmpdir(), "tideflow-startup-"));
  try {
    for (const args of [["runs"], ["show", "1"], ["--help"], ["--version"]]) {
      const node: number[] = [];
      const cli: number[] = [];
      for (let i = 0; i < 11; i++) {
        node.push(wallMs(["-e", "0"], dir));
        cli.push(wallMs([CLI, ...args], dir));
      }
      const [n, c] = [median(node), median(cli)];
      assert.ok(c <= 1.5 * n + 10, `tideflow ${args.join(" ")}: median ${c.toFixed(0)} ms, node -e 0: ${n.toFixed(0)} ms`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
