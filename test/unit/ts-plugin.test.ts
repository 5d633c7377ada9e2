/**
 * The TypeScript server plugin (ts-plugin/): `import ... from "tideflow"` type-checks in
 * a workspace with no tsconfig `paths` and no node_modules/tideflow, against the real
 * SDK declarations; a workspace with its own `tideflow` keeps it. Likewise Node's types
 * (`node:*` imports, `process`): the shipped @types/node, unless the workspace has its own.
 *
 * Two levels: a TypeScript 6 LanguageService with the plugin applied the way tsserver
 * applies it (PluginCreateInfo), and a real tsserver process loading the plugin as
 * VS Code does (--globalPlugins + --pluginProbeLocations, the vsix's layout).
 *
 * Needs the build (`npm run build`: ts-plugin/index.js and dist/sdk.d.ts); `npm test` runs it.
 * Run: `node --import tsx --test test/unit/ts-plugin.test.ts`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import ts from "typescript";

const ROOT = resolve(__dirname, "../..");
const PLUGIN_JS = join(ROOT, "ts-plugin/index.js");
const SDK_DTS = join(ROOT, "dist/sdk.d.ts");
const TSSERVER = join(ROOT, "node_modules/typescript/lib/tsserver.js");
/** Node's types as the extension ships them (the vsix stages @types/node and undici-types). */
const NODE_TYPES_DIR = join(ROOT, "node_modules/@types/node");
const UNDICI_TYPES_DIR = join(ROOT, "node_modules/undici-types");
const NODE_DTS = join(NODE_TYPES_DIR, "index.d.ts");

type PluginInit = typeof import("../../ts-plugin/index");
let init: PluginInit;

const GOOD = `import { workflow, task, shell } from "tideflow";

const extract = shell("extract", { retries: 2, retryDelay: "30s", timeout: "10m" }, "echo $BIZDATE");
const transform = task("transform", { upstream: [extract], params: { region: "all" } }, async (ctx) => {
  ctx.log.info(\`bizdate \${ctx.bizdate}, attempt \${ctx.attempt}\`);
  if (ctx.signal.aborted) return;
  return ctx.params["region"]?.toUpperCase();
});
const report = task("report", { upstream: [transform, "crm.sync"] }, (ctx) => ctx.cyctime.length);

export default workflow("daily_sales", {
  schedule: "30 2 * * *",
  timezone: "Asia/Shanghai",
  concurrency: 2,
  tasks: [extract, transform, report],
});
`;
/** One typo in task code: only real SDK types catch it. */
const TYPO = GOOD.replace("${ctx.bizdate}", "${ctx.bizdat}");
/** Node's APIs in task code, as in examples/*.flow.ts: only Node's types know them. */
const NODE_FLOW = `import { workflow, task } from "tideflow";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const DATA_DIR = process.env.TIDEFLOW_DATA_DIR ?? "/tmp/tideflow-examples";

const load = task("load", async (ctx) => {
  await sleep(10, undefined, { signal: ctx.signal });
  const dir = join(DATA_DIR, ctx.bizdate.replaceAll("-", ""));
  await mkdir(dir, { recursive: true });
  const text: string = await readFile(join(dir, "in.csv"), "utf8");
  ctx.log.info(\`\${text.length} bytes, pid \${process.pid}\`);
});

export default workflow("node_apis", { schedule: "0 * * * *", tasks: [load] });
`;
/** Node's APIs without the SDK: only the plugin's resolution of the directive "node" provides them. */
const NODE_REFERENCE = `/// <reference types="node" />
import { join } from "node:path";
export const where: string = join(process.cwd(), "out");
`;
/** A workspace's own (fake) @types/node, recognisable by its return types. */
const OWN_NODE_TYPES = {
  "node_modules/@types/node/package.json": JSON.stringify({ name: "@types/node", version: "99.0.0", types: "index.d.ts" }),
  "node_modules/@types/node/index.d.ts": `declare module "node:fs/promises" {
  export function mkdir(path: string, options?: { recursive?: boolean }): Promise<"own">;
  export function readFile(path: string, encoding: string): Promise<string>;
}
declare module "node:path" { export function join(...parts: string[]): string; }
declare module "node:timers/promises" { export function setTimeout(ms: number, value?: unknown, options?: { signal?: AbortSignal }): Promise<"own">; }
declare var process: { env: Record<string, string | undefined>; pid: number; own: true };
`,
};
/** NODE_FLOW, checking that the own types are the ones in use. */
const NODE_FLOW_OWN = NODE_FLOW.replace("await mkdir(dir, { recursive: true });", 'const own: "own" = await mkdir(dir, { recursive: true });\n  const isOwn: true = process.own;\n  void [own, isOwn];');
/** Wrong option types, also only caught with the real types. */
const BAD_OPTIONS = GOOD.replace("retries: 2", 'retries: "2"').replace("tasks: [extract, transform, report]", 'tasks: ["extract"]');

/** What VS Code gives a file without a tsconfig (inferred project), roughly. */
const INFERRED: ts.CompilerOptions = {
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  target: ts.ScriptTarget.ES2022,
  strict: true,
  allowJs: true,
  allowImportingTsExtensions: true,
  allowSyntheticDefaultImports: true,
  resolveJsonModule: true,
  noEmit: true,
};
const NODENEXT: ts.CompilerOptions = {
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  strict: true,
  noEmit: true,
};

/** How the host resolves modules before the plugin wraps it. */
type HostKind = "resolveModuleNameLiterals" | "resolveModuleNames" | "none";
/** How the host resolves type reference directives before the plugin wraps it. */
type TypesHostKind = "resolveTypeReferenceDirectiveReferences" | "resolveTypeReferenceDirectives" | "none";

interface Service {
  diagnostics(file?: string): ts.Diagnostic[];
  sourceFiles(): string[];
  /** Completion entry names at an offset of the first root file. */
  completions(offset: number): string[];
}

function writeFiles(dir: string, files: Record<string, string>) {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
}

/** Shared, so the lib files are parsed once for the whole file. */
const registry = ts.createDocumentRegistry();

function makeService(
  dir: string,
  options: ts.CompilerOptions,
  plugin: { config?: unknown } | undefined,
  hostKind: HostKind = "resolveModuleNameLiterals",
  typesHostKind: TypesHostKind = "resolveTypeReferenceDirectiveReferences",
): Service {
  const roots = [join(dir, "a.flow.ts")];
  const moduleCache = ts.createModuleResolutionCache(dir, (f) => f, options);
  const typesCache = ts.createTypeReferenceDirectiveResolutionCache(dir, (f) => f, options, moduleCache.getPackageJsonInfoCache());
  const host: ts.LanguageServiceHost = {
    getCompilationSettings: () => options,
    getScriptFileNames: () => roots,
    getScriptVersion: () => "1",
    getScriptSnapshot: (f) => (ts.sys.fileExists(f) ? ts.ScriptSnapshot.fromString(ts.sys.readFile(f)!) : undefined),
    getCurrentDirectory: () => dir,
    // As tsserver's host: without it TypeScript lower-cases paths it looks up for module
    // completions, and misses a mkdtemp folder with capitals in its name.
    useCaseSensitiveFileNames: () => ts.sys.useCaseSensitiveFileNames,
    getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
    fileExists: ts.sys.fileExists,
    readFile: ts.sys.readFile,
    readDirectory: ts.sys.readDirectory,
    directoryExists: ts.sys.directoryExists,
    getDirectories: ts.sys.getDirectories,
    realpath: ts.sys.realpath,
  };
  if (hostKind === "resolveModuleNameLiterals") {
    // Like tsserver's Project: its own resolution, with a cache.
    host.resolveModuleNameLiterals = (literals, containingFile, redirected, opts, sourceFile) =>
      literals.map((l) => ts.resolveModuleName(l.text, containingFile, opts, host, moduleCache, redirected, ts.getModeForUsageLocation(sourceFile, l, opts)));
  } else if (hostKind === "resolveModuleNames") {
    // TypeScript < 5.0 hosts.
    host.resolveModuleNames = (names, containingFile, _reused, redirected, opts) =>
      names.map((n) => ts.resolveModuleName(n, containingFile, opts, host, moduleCache, redirected).resolvedModule);
  }
  const typeRefName = (r: string | ts.FileReference) => (typeof r === "string" ? r : r.fileName);
  if (typesHostKind === "resolveTypeReferenceDirectiveReferences") {
    // Like tsserver's Project.
    host.resolveTypeReferenceDirectiveReferences = (refs, containingFile, redirected, opts, sourceFile) =>
      refs.map((r) =>
        ts.resolveTypeReferenceDirective(typeRefName(r), containingFile, opts, host, redirected, typesCache, ts.getModeForFileReference(r, sourceFile?.impliedNodeFormat)),
      );
  } else if (typesHostKind === "resolveTypeReferenceDirectives") {
    // TypeScript < 5.0 hosts.
    host.resolveTypeReferenceDirectives = (names, containingFile, redirected, opts, mode) =>
      names.map((r) => ts.resolveTypeReferenceDirective(typeRefName(r), containingFile, opts, host, redirected, typesCache, mode).resolvedTypeReferenceDirective);
  }
  let service = ts.createLanguageService(host, registry);
  if (plugin) {
    // What tsserver does for each plugin: factory({ typescript }), then create(info).
    const info = {
      languageServiceHost: host,
      languageService: service,
      project: { getCurrentDirectory: () => dir, projectService: { logger: { info() {} } } },
      serverHost: ts.sys,
      config: plugin.config ?? {},
    } as unknown as ts.server.PluginCreateInfo;
    service = init({ typescript: ts }).create(info);
  }
  return {
    diagnostics: (file = roots[0]) => [...service.getSyntacticDiagnostics(file), ...service.getSemanticDiagnostics(file)],
    sourceFiles: () => service.getProgram()!.getSourceFiles().map((f) => f.fileName),
    completions: (offset) => (service.getCompletionsAtPosition(roots[0], offset, {})?.entries ?? []).map((e) => e.name),
  };
}

const text = (ds: readonly ts.Diagnostic[]) => ds.map((d) => `TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);

let tmp: string;
before(() => {
  for (const f of [PLUGIN_JS, SDK_DTS]) assert.ok(existsSync(f), `${f} is missing: run \`npm run build\` first`);
  for (const f of [NODE_DTS, join(UNDICI_TYPES_DIR, "index.d.ts")]) assert.ok(existsSync(f), `${f} is missing: run \`npm ci\``);
  init = require(PLUGIN_JS) as PluginInit;
  tmp = mkdtempSync(join(tmpdir(), "tideflow-ts-plugin-"));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function workspace(files: Record<string, string>): string {
  const dir = join(tmp, `ws${n++}`);
  writeFiles(dir, files);
  return dir;
}

describe("the built plugin and declarations", () => {
  test("ts-plugin/ is a self-contained package: package.json + index.js, no runtime typescript", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "ts-plugin/package.json"), "utf8"));
    assert.equal(pkg.name, "tideflow-ts-plugin");
    assert.equal(pkg.main, "index.js");
    assert.equal(pkg.dependencies, undefined);
    const js = readFileSync(PLUGIN_JS, "utf8");
    assert.doesNotMatch(js, /require\(["']typescript/);
    assert.equal(typeof init, "function", "module.exports must be the init function tsserver calls");
  });
  test("dist/sdk.d.ts declares the SDK", () => {
    const dts = readFileSync(SDK_DTS, "utf8");
    for (const name of ["workflow", "task", "shell"]) assert.match(dts, new RegExp(`export declare function ${name}\\(`));
    assert.match(dts, /export interface TaskContext/);
  });
  test("dist/sdk.d.ts starts with a reference to Node's types", () => {
    assert.ok(readFileSync(SDK_DTS, "utf8").startsWith('/// <reference types="node" />\n'));
  });
  test("the extension contributes it", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    assert.deepEqual(pkg.contributes.typescriptServerPlugins, [{ name: "tideflow-ts-plugin", enableForWorkspaceTypeScriptVersions: true }]);
  });
  test("SDK declarations are found in the repository and in the vsix layout", () => {
    assert.equal(init.findSdkTypes(undefined, undefined, join(ROOT, "ts-plugin")), SDK_DTS);
    assert.equal(init.findSdkTypes(undefined, undefined), SDK_DTS, "from the plugin's own __dirname");
    const ext = join(tmp, "extension");
    writeFiles(ext, { "dist/sdk.d.ts": "export {};\n", "node_modules/tideflow-ts-plugin/package.json": "{}" });
    assert.equal(init.findSdkTypes(undefined, undefined, join(ext, "node_modules/tideflow-ts-plugin")), join(ext, "dist/sdk.d.ts"));
    assert.equal(init.findSdkTypes({ sdkTypes: "types/t.d.ts" }, ext, join(ext, "node_modules/tideflow-ts-plugin")), join(ext, "dist/sdk.d.ts"), "a missing override falls through");
    assert.equal(init.findSdkTypes(undefined, undefined, join(tmp, "nowhere/deep/x")), undefined);
  });
  test("Node's types are found in the repository and in the vsix layout", () => {
    assert.equal(init.findNodeTypes(undefined, undefined, join(ROOT, "ts-plugin")), NODE_DTS);
    assert.equal(init.findNodeTypes(undefined, undefined), NODE_DTS, "from the plugin's own __dirname");
    const ext = join(tmp, "extension-node");
    writeFiles(ext, { "node_modules/@types/node/index.d.ts": "export {};\n", "node_modules/tideflow-ts-plugin/package.json": "{}", "custom/node/index.d.ts": "export {};\n" });
    const plugin = join(ext, "node_modules/tideflow-ts-plugin");
    assert.equal(init.findNodeTypes(undefined, undefined, plugin), join(ext, "node_modules/@types/node/index.d.ts"));
    assert.equal(init.findNodeTypes({ nodeTypes: "custom/node" }, ext, plugin), join(ext, "custom/node/index.d.ts"), "a folder");
    assert.equal(init.findNodeTypes({ nodeTypes: "custom/node/index.d.ts" }, ext, plugin), join(ext, "custom/node/index.d.ts"), "a file");
    assert.equal(init.findNodeTypes({ nodeTypes: "types/missing.d.ts" }, ext, plugin), join(ext, "node_modules/@types/node/index.d.ts"), "a missing override falls through");
    assert.equal(init.findNodeTypes(undefined, undefined, join(tmp, "nowhere/deep/x")), undefined);
  });
});

describe("language service with the plugin", () => {
  for (const [label, options] of [["inferred-project options (bundler)", INFERRED], ["nodenext", NODENEXT]] as const) {
    test(`${label}: without the plugin "tideflow" is not found; with it, no diagnostics`, () => {
      const dir = workspace({ "a.flow.ts": GOOD });
      const without = makeService(dir, options, undefined).diagnostics();
      assert.ok(
        without.some((d) => d.code === 2307 && /Cannot find module 'tideflow'/.test(String(ts.flattenDiagnosticMessageText(d.messageText, "\n")))),
        text(without).join("\n"),
      );
      const withPlugin = makeService(dir, options, {});
      assert.deepEqual(text(withPlugin.diagnostics()), []);
      assert.ok(withPlugin.sourceFiles().includes(SDK_DTS.replaceAll("\\", "/")), "resolved to dist/sdk.d.ts");
    });
  }

  for (const hostKind of ["resolveModuleNameLiterals", "resolveModuleNames", "none"] as const) {
    test(`host with ${hostKind}: resolves, and type errors in task code are still reported`, () => {
      const good = makeService(workspace({ "a.flow.ts": GOOD }), INFERRED, {}, hostKind);
      assert.deepEqual(text(good.diagnostics()), []);
      const typo = text(makeService(workspace({ "a.flow.ts": TYPO }), INFERRED, {}, hostKind).diagnostics());
      assert.equal(typo.length, 1, typo.join("\n"));
      assert.match(typo[0], /TS2551: Property 'bizdat' does not exist on type 'TaskContext'\. Did you mean 'bizdate'\?/);
    });
  }

  test("wrong option types are errors too", () => {
    const ds = text(makeService(workspace({ "a.flow.ts": BAD_OPTIONS }), INFERRED, {}).diagnostics());
    assert.equal(ds.length, 2, ds.join("\n"));
    assert.ok(ds.some((d) => d.startsWith("TS2322: Type 'string' is not assignable to type 'number'")), ds.join("\n"));
  });

  test("import completion offers tideflow, never the plugin's own package", () => {
    // As in this repository's examples/: a package.json up the tree names the plugin.
    const flow = `import { workflow } from "";\nimport("");\nconst s = "";\n`;
    const dir = workspace({
      "a.flow.ts": flow,
      "package.json": JSON.stringify({ name: "repo", dependencies: { "tideflow-ts-plugin": "file:./ts-plugin" } }),
      "node_modules/tideflow-ts-plugin/package.json": JSON.stringify({ name: "tideflow-ts-plugin", main: "index.js" }),
      "node_modules/tideflow-ts-plugin/index.js": "module.exports = () => ({});\n",
    });
    const inImport = flow.indexOf('""') + 1;
    const without = makeService(dir, INFERRED, undefined).completions(inImport);
    assert.ok(without.includes("tideflow-ts-plugin") && !without.includes("tideflow"), `without the plugin: ${without.join(", ")}`);
    const withPlugin = makeService(dir, INFERRED, {});
    const names = withPlugin.completions(inImport);
    assert.ok(names.includes("tideflow"), names.join(", "));
    assert.ok(!names.includes("tideflow-ts-plugin"), names.join(", "));
    assert.ok(withPlugin.completions(flow.indexOf('import("') + 8).includes("tideflow"), "import() too");
    assert.ok(!withPlugin.completions(flow.indexOf('s = "') + 5).includes("tideflow"), "not in any string");
  });

  const OWN_FLOW = `import { workflow } from "tideflow";\nexport const own: true = workflow("x").own;\n`;
  const OWN_DTS = `export declare function workflow(id: string): { own: true };\n`;

  test("a workspace with its own node_modules/tideflow keeps it", () => {
    const dir = workspace({ "a.flow.ts": OWN_FLOW, "node_modules/tideflow/index.d.ts": OWN_DTS });
    const s = makeService(dir, INFERRED, {});
    assert.deepEqual(text(s.diagnostics()), []);
    assert.ok(s.sourceFiles().includes(join(dir, "node_modules/tideflow/index.d.ts")));
    assert.ok(!s.sourceFiles().includes(SDK_DTS));
  });

  test("a workspace with its own paths mapping keeps it", () => {
    const dir = workspace({ "a.flow.ts": OWN_FLOW, "vendor/tideflow.d.ts": OWN_DTS });
    const s = makeService(dir, { ...INFERRED, paths: { tideflow: ["./vendor/tideflow.d.ts"] } }, {});
    assert.deepEqual(text(s.diagnostics()), []);
    assert.ok(!s.sourceFiles().includes(SDK_DTS));
  });

  test("config.sdkTypes overrides the shipped declarations", () => {
    const dir = workspace({ "a.flow.ts": OWN_FLOW, "custom/sdk.d.ts": OWN_DTS });
    const s = makeService(dir, INFERRED, { config: { sdkTypes: "custom/sdk.d.ts" } });
    assert.deepEqual(text(s.diagnostics()), []);
    assert.ok(s.sourceFiles().includes(join(dir, "custom/sdk.d.ts")));
  });

  const hasNodeHint = (ds: readonly ts.Diagnostic[], name: string) =>
    ds.some((d) => d.code === 2591 && ts.flattenDiagnosticMessageText(d.messageText, "\n").startsWith(`Cannot find name '${name}'. Do you need to install type definitions for node?`));

  for (const [label, options] of [["inferred-project options (bundler)", INFERRED], ["nodenext", NODENEXT]] as const) {
    test(`${label}: node:* imports and process without the plugin are TS2591; with it, no diagnostics and the shipped @types/node`, () => {
      const dir = workspace({ "a.flow.ts": NODE_FLOW });
      const without = makeService(dir, options, undefined).diagnostics();
      for (const name of ["node:fs/promises", "node:path", "node:timers/promises", "process"]) assert.ok(hasNodeHint(without, name), `${name}:\n${text(without).join("\n")}`);
      const withPlugin = makeService(dir, options, {});
      assert.deepEqual(text(withPlugin.diagnostics()), []);
      assert.ok(withPlugin.sourceFiles().includes(NODE_DTS), withPlugin.sourceFiles().join("\n"));
    });
  }

  for (const typesHostKind of ["resolveTypeReferenceDirectiveReferences", "resolveTypeReferenceDirectives", "none"] as const) {
    test(`host with ${typesHostKind}: the directive "node" resolves to the shipped @types/node (no SDK import)`, () => {
      const dir = workspace({ "a.flow.ts": NODE_REFERENCE });
      const without = makeService(dir, INFERRED, undefined, "resolveModuleNameLiterals", typesHostKind).diagnostics();
      assert.ok(without.some((d) => d.code === 2688), text(without).join("\n"));
      const s = makeService(dir, INFERRED, {}, "resolveModuleNameLiterals", typesHostKind);
      assert.deepEqual(text(s.diagnostics()), []);
      assert.ok(s.sourceFiles().includes(NODE_DTS), s.sourceFiles().join("\n"));
      assert.ok(!s.sourceFiles().includes(SDK_DTS));
    });
  }

  test('compilerOptions.types ["node"] with no @types/node in the workspace: the shipped one', () => {
    const dir = workspace({ "a.flow.ts": `export const cwd: string = process.cwd();\n` });
    const options = { ...INFERRED, types: ["node"] };
    assert.ok(makeService(dir, options, undefined).diagnostics().some((d) => d.code === 2591));
    const s = makeService(dir, options, {});
    assert.deepEqual(text(s.diagnostics()), []);
    assert.ok(s.sourceFiles().includes(NODE_DTS));
  });

  test("a workspace with its own node_modules/@types/node keeps it", () => {
    const dir = workspace({ "a.flow.ts": NODE_FLOW_OWN, ...OWN_NODE_TYPES });
    for (const typesHostKind of ["resolveTypeReferenceDirectiveReferences", "resolveTypeReferenceDirectives", "none"] as const) {
      const s = makeService(dir, INFERRED, {}, "resolveModuleNameLiterals", typesHostKind);
      assert.deepEqual(text(s.diagnostics()), [], typesHostKind);
      const files = s.sourceFiles();
      assert.ok(files.includes(join(dir, "node_modules/@types/node/index.d.ts")), files.join("\n"));
      assert.ok(!files.some((f) => f.startsWith(NODE_TYPES_DIR + "/")), files.join("\n"));
      assert.ok(files.includes(SDK_DTS));
    }
  });

  test("config.nodeTypes overrides the shipped @types/node", () => {
    // No SDK import: dist/sdk.d.ts's own reference finds the @types/node next to it (repository
    // and vsix alike) by TypeScript's lookup, before any fallback.
    const flow = `/// <reference types="node" />\nimport { join } from "node:path";\nexport const own: true = process.own;\nexport const p: string = join("a", "b");\n`;
    const dir = workspace({ "a.flow.ts": flow, ...Object.fromEntries(Object.entries(OWN_NODE_TYPES).map(([k, v]) => [k.replace("node_modules/@types/node", "vendor/node-types"), v])) });
    const s = makeService(dir, INFERRED, { config: { nodeTypes: "vendor/node-types" } });
    assert.deepEqual(text(s.diagnostics()), []);
    assert.ok(s.sourceFiles().includes(join(dir, "vendor/node-types/index.d.ts")));
    assert.ok(!s.sourceFiles().some((f) => f.startsWith(NODE_TYPES_DIR + "/")));
  });

  test("other unresolved modules stay unresolved", () => {
    const dir = workspace({ "a.flow.ts": `import { x } from "tideflow-other";\nimport { y } from "tideflow/sub";\nexport const z = [x, y];\n` });
    const ds = makeService(dir, INFERRED, {}).diagnostics();
    assert.deepEqual(ds.map((d) => d.code), [2307, 2307], text(ds).join("\n"));
  });
});

// A real tsserver, loading the plugin the way VS Code does: the plugin copied into a fake
// extension folder laid out like the vsix (<ext>/node_modules/tideflow-ts-plugin/,
// <ext>/dist/sdk.d.ts, <ext>/node_modules/{@types/node,undici-types}/), found through
// --globalPlugins and --pluginProbeLocations <ext>.

interface TsServer {
  request(command: string, args: unknown): Promise<{ success: boolean; body?: unknown; message?: string }>;
  close(): void;
}

function startTsServer(args: string[]): TsServer {
  const child = spawn(process.execPath, [TSSERVER, "--disableAutomaticTypingAcquisition", "--locale", "en", ...args], { stdio: ["pipe", "pipe", "inherit"] });
  const waiting = new Map<number, (r: { success: boolean; body?: unknown; message?: string }) => void>();
  let buffer = Buffer.alloc(0);
  child.stdout.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      const headerEnd = buffer.indexOf("\r\n\r\n");
      if (headerEnd < 0) return;
      const length = Number(/Content-Length: (\d+)/.exec(buffer.subarray(0, headerEnd).toString())?.[1]);
      if (buffer.length < headerEnd + 4 + length) return;
      const message = JSON.parse(buffer.subarray(headerEnd + 4, headerEnd + 4 + length).toString("utf8"));
      buffer = buffer.subarray(headerEnd + 4 + length);
      if (message.type === "response") waiting.get(message.request_seq)?.(message);
    }
  });
  let seq = 0;
  return {
    request(command, args) {
      const id = ++seq;
      return new Promise((resolvePromise, reject) => {
        const timer = setTimeout(() => reject(new Error(`tsserver: no answer to ${command}`)), 60_000);
        waiting.set(id, (r) => {
          clearTimeout(timer);
          resolvePromise(r);
        });
        child.stdin.write(JSON.stringify({ seq: id, type: "request", command, arguments: args }) + "\n");
      });
    },
    close() {
      child.stdin.end();
      child.kill();
    },
  };
}

describe("real tsserver, plugin loaded as VS Code loads it", () => {
  // What VS Code 1.100 sends for files outside any tsconfig.
  const inferredOptions = {
    module: "ESNext",
    moduleResolution: "Bundler",
    target: "ES2022",
    jsx: "react",
    allowImportingTsExtensions: true,
    strictNullChecks: true,
    strictFunctionTypes: true,
    allowJs: true,
    allowSyntheticDefaultImports: true,
    allowNonTsExtensions: true,
    resolveJsonModule: true,
  };

  /** Diagnostics of every `.flow.ts` of each workspace, and the files of its project. */
  async function diagnose(withPlugin: boolean, workspaces: Record<string, string>[]) {
    const ext = join(tmp, `ext${n++}`);
    mkdirSync(join(ext, "node_modules/tideflow-ts-plugin"), { recursive: true });
    mkdirSync(join(ext, "dist"), { recursive: true });
    copyFileSync(join(ROOT, "ts-plugin/package.json"), join(ext, "node_modules/tideflow-ts-plugin/package.json"));
    copyFileSync(PLUGIN_JS, join(ext, "node_modules/tideflow-ts-plugin/index.js"));
    copyFileSync(SDK_DTS, join(ext, "dist/sdk.d.ts"));
    cpSync(NODE_TYPES_DIR, join(ext, "node_modules/@types/node"), { recursive: true });
    cpSync(UNDICI_TYPES_DIR, join(ext, "node_modules/undici-types"), { recursive: true });
    // VS Code starts tsserver with --useInferredProjectPerProjectRoot and sends each file's
    // workspace folder as projectRootPath: one inferred project per workspace.
    const args = ["--useInferredProjectPerProjectRoot"];
    if (withPlugin) args.push("--globalPlugins", "tideflow-ts-plugin", "--pluginProbeLocations", ext);
    const server = startTsServer(args);
    try {
      await server.request("compilerOptionsForInferredProjects", { options: inferredOptions });
      const results = [];
      for (const files of workspaces) {
        const dir = workspace(files);
        const diagnostics: Record<string, string[]> = {};
        const flows = Object.keys(files).filter((f) => f.endsWith(".flow.ts"));
        for (const name of flows) await server.request("open", { file: join(dir, name), projectRootPath: dir });
        for (const name of flows) {
          const r = await server.request("semanticDiagnosticsSync", { file: join(dir, name) });
          assert.ok(r.success, r.message);
          diagnostics[name] = (r.body as { code: number; text: string }[]).map((d) => `TS${d.code}: ${d.text}`);
        }
        const info = await server.request("projectInfo", { file: join(dir, flows[0]), needFileNameList: true });
        results.push({ dir, diagnostics, projectFiles: (info.body as { fileNames: string[] }).fileNames });
      }
      return { results, ext };
    } finally {
      server.close();
    }
  }

  test("without the plugin: Cannot find module 'tideflow', and Node's names are TS2591", { timeout: 30_000 }, async () => {
    const [r, node] = (await diagnose(false, [{ "a.flow.ts": GOOD }, { "a.flow.ts": NODE_FLOW }])).results;
    assert.ok(r.diagnostics["a.flow.ts"].some((d) => d.startsWith("TS2307: Cannot find module 'tideflow'")), r.diagnostics["a.flow.ts"].join("\n"));
    for (const name of ["node:fs/promises", "node:path", "node:timers/promises", "process"]) {
      assert.ok(
        node.diagnostics["a.flow.ts"].some((d) => d.startsWith(`TS2591: Cannot find name '${name}'. Do you need to install type definitions for node?`)),
        `${name}:\n${node.diagnostics["a.flow.ts"].join("\n")}`,
      );
    }
  });

  test("with the plugin: no error and real types from the vsix's dist/sdk.d.ts; a workspace's own node_modules/tideflow wins", { timeout: 30_000 }, async () => {
    const { results, ext } = await diagnose(true, [
      { "a.flow.ts": GOOD, "b.flow.ts": TYPO },
      {
        "a.flow.ts": `import { workflow } from "tideflow";\nexport const own: true = workflow("x").own;\n`,
        "node_modules/tideflow/index.d.ts": `export declare function workflow(id: string): { own: true };\n`,
      },
    ]);
    const [shipped, own] = results;
    assert.deepEqual(shipped.diagnostics["a.flow.ts"], []);
    assert.equal(shipped.diagnostics["b.flow.ts"].length, 1, shipped.diagnostics["b.flow.ts"].join("\n"));
    assert.match(shipped.diagnostics["b.flow.ts"][0], /TS2551: Property 'bizdat' does not exist on type 'TaskContext'/);
    assert.ok(shipped.projectFiles.includes(join(ext, "dist/sdk.d.ts")), shipped.projectFiles.join("\n"));

    assert.deepEqual(own.diagnostics["a.flow.ts"], []);
    assert.ok(!own.projectFiles.some((f) => f.endsWith("dist/sdk.d.ts")), own.projectFiles.join("\n"));
  });
  test("with the plugin: Node's types from the vsix's node_modules/@types/node; a workspace's own @types/node wins", { timeout: 30_000 }, async () => {
    const { results, ext } = await diagnose(true, [
      { "a.flow.ts": NODE_FLOW },
      { "a.flow.ts": NODE_REFERENCE },
      { "a.flow.ts": NODE_FLOW_OWN, ...OWN_NODE_TYPES },
    ]);
    const [flow, reference, own] = results;
    const shippedNode = join(ext, "node_modules/@types/node/index.d.ts");
    assert.deepEqual(flow.diagnostics["a.flow.ts"], []);
    assert.ok(flow.projectFiles.includes(shippedNode), flow.projectFiles.join("\n"));
    assert.ok(flow.projectFiles.includes(join(ext, "dist/sdk.d.ts")), flow.projectFiles.join("\n"));

    // No SDK import: only the plugin's fallback for the directive "node" finds the shipped types.
    assert.deepEqual(reference.diagnostics["a.flow.ts"], []);
    assert.ok(reference.projectFiles.includes(shippedNode), reference.projectFiles.join("\n"));

    assert.deepEqual(own.diagnostics["a.flow.ts"], []);
    assert.ok(own.projectFiles.includes(join(own.dir, "node_modules/@types/node/index.d.ts")), own.projectFiles.join("\n"));
    assert.ok(!own.projectFiles.some((f) => f.includes("/node_modules/@types/node/") && !f.startsWith(own.dir)), own.projectFiles.join("\n"));
  });
});
