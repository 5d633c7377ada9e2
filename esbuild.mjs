// One build for every part of Tideflow. `node esbuild.mjs [--watch] [--minify]`.
import * as esbuild from "esbuild";
import { chmodSync } from "node:fs";

const watch = process.argv.includes("--watch");
const minify = process.argv.includes("--minify");

/** @type {import("esbuild").BuildOptions} */
const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  sourcemap: "linked",
  minify,
  logLevel: "warning",
  // typescript-estree only needs TypeScript's parser; keep the bundle free of its
  // optional integrations.
  external: ["vscode"],
};

const entries = [
  { in: "client/extension.ts", out: "dist/extension.js" },
  { in: "server/main.ts", out: "dist/server.js" },
  // esbuild is a native package: the runner loads it from node_modules to bundle workflow files.
  { in: "runner/main.ts", out: "dist/runner.js", external: ["esbuild"] },
  // The warm worker processes that run TS/JS tasks, and the SDK that `tideflow` resolves
  // to in a bundled workflow file.
  { in: "runner/worker.ts", out: "dist/worker.js" },
  // The analyzer in a child process, for the runner and the server's workspace index.
  { in: "server/analyze-process.ts", out: "dist/analyze.js" },
  { in: "sdk/index.ts", out: "dist/sdk.js" },
  { in: "runner/cli.ts", out: "dist/cli.js", banner: "#!/usr/bin/env node" },
];

const contexts = await Promise.all(
  entries.map((e) =>
    esbuild.context({
      ...common,
      entryPoints: [e.in],
      outfile: e.out,
      banner: e.banner ? { js: e.banner } : undefined,
      external: [...common.external, ...(e.external ?? [])],
    }),
  ),
);

if (watch) {
  await Promise.all(contexts.map((c) => c.watch()));
  console.log("esbuild: watching");
} else {
  await Promise.all(contexts.map((c) => c.rebuild()));
  await Promise.all(contexts.map((c) => c.dispose()));
  chmodSync("dist/cli.js", 0o755);
}
