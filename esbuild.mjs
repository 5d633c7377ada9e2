// One build for every part of Tideflow. `node esbuild.mjs [--watch] [--minify]`.
import * as esbuild from "esbuild";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";

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
  // The spawn helper that starts shell tasks (protocol/spawner.ts says why): Node's own
  // modules only, so that it stays small.
  { in: "runner/exec/spawner.ts", out: "dist/spawner.js" },
  // The analyzer in a child process, for the runner and the server's workspace index.
  { in: "server/analyze-process.ts", out: "dist/analyze.js" },
  { in: "sdk/index.ts", out: "dist/sdk.js", plugins: [sdkDeclarations()] },
  // The CLI's entry stays small so that every command starts fast; check and dag (the
  // analyzer, TypeScript inside) are a bundle of their own that it loads when they run.
  { in: "runner/cli.ts", out: "dist/cli.js", banner: "#!/usr/bin/env node" },
  { in: "server/cli-files.ts", out: "dist/cli-files.js" },
  // The TypeScript server plugin (contributes.typescriptServerPlugins): a self-contained
  // package folder, ts-plugin/{package.json,index.js}, copied as-is into the vsix's
  // node_modules/tideflow-ts-plugin/. It gets `typescript` from tsserver, never imports it.
  { in: "ts-plugin/index.ts", out: "ts-plugin/index.js", sourcemap: false, plugins: [noRuntimeTypescript()] },
  // The webview scripts (client/dag-panel.ts, client/details-panel.ts load them from media/).
  { in: "media/dag.ts", out: "media/dag.js", browser: true },
  { in: "media/details.ts", out: "media/details.js", browser: true },
];

/** The SDK's declarations, dist/sdk.d.ts, what the TS server plugin resolves `tideflow` to. */
async function writeSdkDeclarations() {
  const ts = (await import("typescript")).default;
  const fileName = "sdk/index.ts";
  const r = ts.transpileDeclaration(readFileSync(fileName, "utf8"), {
    fileName,
    reportDiagnostics: true,
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.Node16, strict: true },
  });
  if (r.diagnostics?.length) {
    const text = ts.formatDiagnostics(r.diagnostics, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => process.cwd(), getNewLine: () => "\n" });
    throw new Error(`dist/sdk.d.ts: sdk/index.ts must keep isolated declarations (explicit types on exports):\n${text}`);
  }
  mkdirSync("dist", { recursive: true });
  // The SDK's types use Node's (AbortSignal…): the reference makes them resolve in a workspace
  // without @types/node too (the vsix ships it, the TS server plugin falls back to it).
  const reference = '/// <reference types="node" />\n';
  writeFileSync("dist/sdk.d.ts", r.outputText.startsWith(reference) ? r.outputText : reference + r.outputText);
}

/** Fails the plugin build if anything would `require("typescript")` at runtime. */
function noRuntimeTypescript() {
  return {
    name: "no-runtime-typescript",
    setup(build) {
      build.onResolve({ filter: /^typescript(\/|$)/ }, (args) => ({
        errors: [{ text: `ts-plugin must not import "${args.path}" at runtime; use the instance tsserver passes to init()` }],
      }));
    },
  };
}

/** Regenerates dist/sdk.d.ts whenever the SDK bundle is (re)built, --watch included. */
function sdkDeclarations() {
  return {
    name: "sdk-declarations",
    setup(build) {
      build.onEnd(async (result) => {
        if (result.errors.length) return;
        try {
          await writeSdkDeclarations();
        } catch (e) {
          if (!watch) throw e;
          console.error(String(e));
        }
      });
    },
  };
}

const contexts = await Promise.all(
  entries.map((e) =>
    esbuild.context({
      ...common,
      ...(e.browser ? { platform: "browser", format: "iife", target: "es2022" } : {}),
      entryPoints: [e.in],
      outfile: e.out,
      banner: e.banner ? { js: e.banner } : undefined,
      sourcemap: e.sourcemap ?? common.sourcemap,
      plugins: e.plugins,
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
