/**
 * Bundling a workflow file for the TS task workers: one CommonJS file per run (the run's
 * code is frozen at creation), written to `<stateDir>/bundles/<runId>.cjs`.
 *
 * What goes in the bundle and what stays outside:
 * - The workflow file and every file it imports by relative path: bundled (TypeScript is
 *   compiled by esbuild, nothing is type-checked).
 * - `tideflow`: the SDK at `sdkPath`, bundled, so that a run does not change when the
 *   extension updates.
 * - Packages (bare imports resolved by Node from the importing file, e.g. the workspace's
 *   node_modules): kept external, as `require("<absolute resolved path>")`. Native addons,
 *   packages that read their own files at run time, and huge dependency trees then work as
 *   they do under plain Node, and the bundle works wherever it is written. A package Node
 *   cannot `require` (ESM-only without a `require` condition, TypeScript sources in a
 *   monorepo, tsconfig `paths` aliases) is bundled by esbuild instead.
 * - Node built-ins: external, as esbuild does for platform `node`.
 */
import { createRequire, isBuiltin } from "node:module";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { Message, Plugin } from "esbuild";

export type BundleResult = { ok: true } | { ok: false; error: string };

/** Where the executor looks for a run's bundle. */
export function bundlePath(stateDir: string, runId: string): string {
  return join(stateDir, "bundles", `${runId}.cjs`);
}

/** `file:line:column: text` for each esbuild message, one per line. */
function formatMessages(messages: Message[]): string {
  return messages
    .map((m) => (m.location ? `${m.location.file}:${m.location.line}:${m.location.column}: ${m.text}` : m.text))
    .join("\n");
}

const SOURCE_EXTENSIONS = /\.(?:[cm]?tsx?|jsx)$/;

/** The plugin that maps `tideflow` to the SDK and keeps packages Node can load external. */
function resolvePlugin(sdkPath: string): Plugin {
  return {
    name: "tideflow-resolve",
    setup(build) {
      build.onResolve({ filter: /^tideflow$/ }, () => ({ path: sdkPath }));
      // Bare specifiers only: not relative, not absolute.
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        if (isBuiltin(args.path) || args.importer === "") return undefined;
        let resolved: string;
        try {
          resolved = createRequire(args.importer).resolve(args.path);
        } catch {
          return undefined; // not loadable by Node's require: let esbuild bundle it (or report it)
        }
        if (SOURCE_EXTENSIONS.test(resolved)) return undefined;
        return { path: resolved, external: true };
      });
    },
  };
}

/**
 * Bundles `file` (absolute, or relative to `opts.root`) to `outFile` as CommonJS for
 * Node 20. The file is replaced atomically, so a reader never sees half a bundle. Failures
 * come back as one readable message (`file:line:column: text` per error).
 */
export async function bundleWorkflow(file: string, outFile: string, opts: { root: string; sdkPath: string }): Promise<BundleResult> {
  let esbuild: typeof import("esbuild");
  try {
    esbuild = await import("esbuild");
  } catch (e) {
    return { ok: false, error: `esbuild could not be loaded (it bundles TS tasks; is it installed?): ${(e as Error).message}` };
  }
  try {
    const result = await esbuild.build({
      entryPoints: [resolve(opts.root, file)],
      absWorkingDir: opts.root,
      outfile: outFile,
      write: false,
      bundle: true,
      platform: "node",
      target: "node20",
      format: "cjs",
      // Stack traces of failing tasks point at the workflow file (workers run with --enable-source-maps).
      sourcemap: "inline",
      logLevel: "silent",
      plugins: [resolvePlugin(resolve(opts.sdkPath))],
    });
    const output = result.outputFiles[0];
    if (!output) return { ok: false, error: `esbuild produced no output for ${file}` };
    await mkdir(dirname(outFile), { recursive: true, mode: 0o700 });
    const temp = `${outFile}.${process.pid}.tmp`;
    await writeFile(temp, output.contents, { mode: 0o600 });
    await rename(temp, outFile);
    return { ok: true };
  } catch (e) {
    const errors = (e as { errors?: Message[] }).errors;
    if (Array.isArray(errors) && errors.length > 0) return { ok: false, error: formatMessages(errors) };
    return { ok: false, error: `bundling ${file} failed: ${(e as Error).message}` };
  }
}
