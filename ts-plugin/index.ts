/**
 * tideflow-ts-plugin: a TypeScript server plugin that makes `import ... from "tideflow"`
 * type-check in any workspace, with no tsconfig `paths` and no `npm install`.
 *
 * It wraps the language service host's module resolution. For the module name
 * `tideflow`, and only when the normal resolution finds nothing, the import resolves to
 * the SDK's declaration file shipped with the extension (`dist/sdk.d.ts`, generated from
 * `sdk/index.ts` by esbuild.mjs). A workspace with its own `tideflow` (node_modules or
 * `paths`) keeps it.
 *
 * Where the declarations are, relative to this file (first that exists wins):
 * - `info.config.sdkTypes` (plugin configuration; relative to the project directory);
 * - `../dist/sdk.d.ts`: the repository (`<repo>/ts-plugin/index.js`, also what a
 *   `file:` dependency's symlink `node_modules/tideflow-ts-plugin` resolves to);
 * - `../../dist/sdk.d.ts`: the packaged extension
 *   (`<extension>/node_modules/tideflow-ts-plugin/index.js`).
 *
 * Node's types, the same way: `dist/sdk.d.ts` starts with `/// <reference types="node" />`
 * and workflow files import `node:*` modules, so the plugin also wraps the host's
 * type-reference-directive resolution. For the directive `node`, and only when the normal
 * resolution finds nothing (no `@types/node` of the workspace's own), it resolves to the
 * `@types/node` shipped with the extension (the vsix stages it with its dependency
 * `undici-types`). Where, relative to this file (first that exists wins):
 * - `info.config.nodeTypes` (a `.d.ts`, or an `@types/node` folder; relative to the
 *   project directory);
 * - `../node_modules/@types/node/index.d.ts`: the repository;
 * - `../@types/node/index.d.ts`: the packaged extension
 *   (`<extension>/node_modules/@types/node/`).
 *
 * Built to `ts-plugin/index.js` (CommonJS, no dependencies) by esbuild.mjs. TypeScript is
 * the instance tsserver passes to `init`; it is only imported here for types.
 */
import type * as ts from "typescript";
import { existsSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";

const MODULE_NAME = "tideflow";
/** The type reference directive (`/// <reference types="node" />`, `types: ["node"]`) the plugin provides. */
const NODE_TYPES_NAME = "node";

interface PluginConfig {
  /** Path of a `.d.ts` to use for `tideflow`; absolute, or relative to the project directory. */
  sdkTypes?: string;
  /**
   * Path of the `.d.ts` (or the `@types/node` folder) to use for the type reference `node`;
   * absolute, or relative to the project directory.
   */
  nodeTypes?: string;
}

/** The built-in places, in order: the repository layout, then the packaged extension's. */
function defaultSdkTypesCandidates(pluginDir: string = __dirname): string[] {
  return [join(pluginDir, "..", "dist", "sdk.d.ts"), join(pluginDir, "..", "..", "dist", "sdk.d.ts")];
}

function findSdkTypes(config: PluginConfig | undefined, projectDir: string | undefined, pluginDir: string = __dirname): string | undefined {
  const candidates: string[] = [];
  if (config && typeof config.sdkTypes === "string" && config.sdkTypes !== "") {
    candidates.push(isAbsolute(config.sdkTypes) ? config.sdkTypes : resolve(projectDir ?? process.cwd(), config.sdkTypes));
  }
  candidates.push(...defaultSdkTypesCandidates(pluginDir));
  return candidates.find((c) => existsSync(c));
}

/** The built-in places of Node's types, in order: the repository layout, then the packaged extension's. */
function defaultNodeTypesCandidates(pluginDir: string = __dirname): string[] {
  return [
    join(pluginDir, "..", "node_modules", "@types", "node", "index.d.ts"),
    join(pluginDir, "..", "@types", "node", "index.d.ts"),
  ];
}

const isFile = (p: string) => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
};

function findNodeTypes(config: PluginConfig | undefined, projectDir: string | undefined, pluginDir: string = __dirname): string | undefined {
  const candidates: string[] = [];
  if (config && typeof config.nodeTypes === "string" && config.nodeTypes !== "") {
    const p = isAbsolute(config.nodeTypes) ? config.nodeTypes : resolve(projectDir ?? process.cwd(), config.nodeTypes);
    candidates.push(p, join(p, "index.d.ts"));
  }
  candidates.push(...defaultNodeTypesCandidates(pluginDir));
  return candidates.find(isFile);
}

function init(modules: { typescript: typeof ts }): ts.server.PluginModule {
  const typescript = modules.typescript;
  /** Latest configuration from `configurePlugin` (onConfigurationChanged), if any. */
  let configured: PluginConfig | undefined;
  const projects = new Set<{ refresh(): void }>();

  function create(info: ts.server.PluginCreateInfo): ts.LanguageService {
    const host = info.languageServiceHost;
    const log = (message: string) => {
      try {
        info.project?.projectService?.logger?.info(`[tideflow-ts-plugin] ${message}`);
      } catch {
        // A minimal project (tests, other hosts) may have no logger.
      }
    };
    const projectDir = (() => {
      try {
        return info.project?.getCurrentDirectory?.() ?? host.getCurrentDirectory();
      } catch {
        return host.getCurrentDirectory();
      }
    })();

    let sdkTypes: string | undefined;
    let nodeTypes: string | undefined;
    const refresh = () => {
      const config = configured ?? (info.config as PluginConfig | undefined);
      sdkTypes = findSdkTypes(config, projectDir);
      log(sdkTypes ? `"${MODULE_NAME}" falls back to ${sdkTypes}` : `no SDK declarations found near ${__dirname}; "${MODULE_NAME}" is left alone`);
      nodeTypes = forThisTypeScript(findNodeTypes(config, projectDir));
      log(nodeTypes ? `types "${NODE_TYPES_NAME}" fall back to ${nodeTypes}` : `no @types/node found near ${__dirname}; types "${NODE_TYPES_NAME}" are left alone`);
    };
    refresh();
    projects.add({ refresh });

    /**
     * `<dir>/@types/node/index.d.ts` → the entry point of that package for this TypeScript
     * (its package.json `typesVersions`: @types/node has `ts5.6/index.d.ts` for TS <= 5.6),
     * by TypeScript's own lookup of a type root; any other file stays as it is.
     */
    function forThisTypeScript(file: string | undefined): string | undefined {
      if (!file || basename(file) !== "index.d.ts" || !existsSync(join(dirname(file), "package.json"))) return file;
      const typesDir = dirname(file);
      try {
        const r = typescript.resolveTypeReferenceDirective(basename(typesDir), undefined, { typeRoots: [dirname(typesDir)] }, typescript.sys);
        const resolved = r.resolvedTypeReferenceDirective?.resolvedFileName;
        return resolved && dirname(resolved).startsWith(typesDir) ? resolved : file;
      } catch {
        return file;
      }
    }

    const nodeFallback = (): ts.ResolvedTypeReferenceDirective | undefined =>
      nodeTypes ? { primary: true, resolvedFileName: nodeTypes, isExternalLibraryImport: true } : undefined;
    const typeRefName = (ref: string | ts.FileReference) => (typeof ref === "string" ? ref : ref.fileName);

    const fallback = (): ts.ResolvedModuleFull | undefined =>
      sdkTypes ? { resolvedFileName: sdkTypes, extension: typescript.Extension.Dts, isExternalLibraryImport: true } : undefined;

    const original = host.resolveModuleNameLiterals?.bind(host);
    const originalLegacy = host.resolveModuleNames?.bind(host);

    if (original || !originalLegacy) {
      // TypeScript >= 5.0 (tsserver's Project implements it). A host with neither hook
      // gets TypeScript's own resolution here, wrapped the same way.
      const resolveLiterals: NonNullable<ts.LanguageServiceHost["resolveModuleNameLiterals"]> =
        original ??
        ((literals, containingFile, redirectedReference, options, containingSourceFile) =>
          literals.map((literal) =>
            typescript.resolveModuleName(
              literal.text,
              containingFile,
              options,
              host,
              undefined,
              redirectedReference,
              typescript.getModeForUsageLocation(containingSourceFile, literal, options),
            ),
          ));
      host.resolveModuleNameLiterals = (literals, containingFile, redirectedReference, options, containingSourceFile, reusedNames) => {
        const results = resolveLiterals(literals, containingFile, redirectedReference, options, containingSourceFile, reusedNames);
        if (!literals.some((l) => l.text === MODULE_NAME)) return results;
        return results.map((result, i) => {
          if (literals[i].text !== MODULE_NAME || result.resolvedModule) return result;
          const resolvedModule = fallback();
          // Keep the failed lookups: tsserver watches them, so installing a real
          // `tideflow` later re-resolves to it.
          return resolvedModule ? { ...result, resolvedModule } : result;
        });
      };
    }

    if (originalLegacy) {
      // TypeScript < 5.0 (workspace versions), which only knows `resolveModuleNames`.
      host.resolveModuleNames = (moduleNames, containingFile, reusedNames, redirectedReference, options, containingSourceFile) => {
        const results = originalLegacy(moduleNames, containingFile, reusedNames, redirectedReference, options, containingSourceFile);
        return results.map((result, i) => (moduleNames[i] === MODULE_NAME && !result ? fallback() : result));
      };
    }

    const originalTypes = host.resolveTypeReferenceDirectiveReferences?.bind(host);
    const originalTypesLegacy = host.resolveTypeReferenceDirectives?.bind(host);

    if (originalTypes || !originalTypesLegacy) {
      // TypeScript >= 5.0; a host with neither hook gets TypeScript's own resolution, wrapped.
      const resolveRefs: NonNullable<ts.LanguageServiceHost["resolveTypeReferenceDirectiveReferences"]> =
        originalTypes ??
        ((refs, containingFile, redirectedReference, options, containingSourceFile) =>
          refs.map((ref) =>
            typescript.resolveTypeReferenceDirective(
              typeRefName(ref),
              containingFile,
              options,
              host,
              redirectedReference,
              undefined,
              typescript.getModeForFileReference(ref, containingSourceFile?.impliedNodeFormat),
            ),
          ));
      host.resolveTypeReferenceDirectiveReferences = <T extends ts.FileReference | string>(
        refs: readonly T[],
        containingFile: string,
        redirectedReference: ts.ResolvedProjectReference | undefined,
        options: ts.CompilerOptions,
        containingSourceFile: ts.SourceFile | undefined,
        reusedNames: readonly T[] | undefined,
      ) => {
        const results = resolveRefs(refs, containingFile, redirectedReference, options, containingSourceFile, reusedNames);
        if (!refs.some((r) => typeRefName(r) === NODE_TYPES_NAME)) return results;
        return results.map((result, i) => {
          if (typeRefName(refs[i]) !== NODE_TYPES_NAME || result.resolvedTypeReferenceDirective?.resolvedFileName) return result;
          const resolvedTypeReferenceDirective = nodeFallback();
          // Keep the failed lookups (watched: installing @types/node later re-resolves to it).
          return resolvedTypeReferenceDirective ? { ...result, resolvedTypeReferenceDirective } : result;
        });
      };
    }

    if (originalTypesLegacy) {
      // TypeScript < 5.0.
      host.resolveTypeReferenceDirectives = (names, containingFile, redirectedReference, options, containingFileMode) => {
        const results = originalTypesLegacy(names, containingFile, redirectedReference, options, containingFileMode);
        return results.map((result, i) => (typeRefName(names[i]) === NODE_TYPES_NAME && !result?.resolvedFileName ? nodeFallback() : result));
      };
    }

    return withImportCompletions(typescript, info.languageService);
  }

  return {
    create,
    onConfigurationChanged(config: PluginConfig) {
      configured = config;
      for (const p of projects) p.refresh();
    },
  };
}

/** The plugin's own package: a dependency of the repository, never a module to import. */
const PLUGIN_PACKAGE = "tideflow-ts-plugin";

/**
 * Import completion (`from "|"`) offers `tideflow`, which resolves through the plugin and
 * so is in no node_modules TypeScript lists, and not the plugin's own package, which
 * TypeScript lists where a package.json names it (this repository's examples/). Every
 * other method of the language service is the original.
 */
function withImportCompletions(typescript: typeof ts, service: ts.LanguageService): ts.LanguageService {
  const proxy = Object.create(null) as ts.LanguageService;
  for (const k of Object.keys(service) as (keyof ts.LanguageService)[]) {
    const member = service[k];
    (proxy as unknown as Record<string, unknown>)[k] = typeof member === "function" ? (member as (...a: unknown[]) => unknown).bind(service) : member;
  }
  proxy.getCompletionsAtPosition = (fileName, position, options, formatting) => {
    const result = service.getCompletionsAtPosition(fileName, position, options, formatting);
    if (!result || !inModuleSpecifier(typescript, service, fileName, position)) return result;
    const entries = result.entries.filter((e) => e.name !== PLUGIN_PACKAGE);
    if (!entries.some((e) => e.name === MODULE_NAME)) {
      entries.unshift({ name: MODULE_NAME, kind: typescript.ScriptElementKind.externalModuleName, kindModifiers: "", sortText: "0" });
    }
    return { ...result, entries };
  };
  return proxy;
}

/** Whether `position` is inside the string of an `import … from "…"`, `export … from "…"` or `import("…")`. */
function inModuleSpecifier(typescript: typeof ts, service: ts.LanguageService, fileName: string, position: number): boolean {
  const source = service.getProgram()?.getSourceFile(fileName);
  if (!source) return false;
  let node: ts.Node = source;
  for (;;) {
    const child = node.getChildren(source).find((c) => c.getStart(source) <= position && position <= c.getEnd());
    if (!child) break;
    node = child;
  }
  if (!typescript.isStringLiteralLike(node) || position <= node.getStart(source)) return false;
  const parent = node.parent;
  return (
    ((typescript.isImportDeclaration(parent) || typescript.isExportDeclaration(parent)) && parent.moduleSpecifier === node) ||
    (typescript.isCallExpression(parent) && parent.expression.kind === typescript.SyntaxKind.ImportKeyword)
  );
}

// tsserver requires the module and calls what it gets: `module.exports` is `init`.
init.findSdkTypes = findSdkTypes;
init.defaultSdkTypesCandidates = defaultSdkTypesCandidates;
init.findNodeTypes = findNodeTypes;
init.defaultNodeTypesCandidates = defaultNodeTypesCandidates;
export = init;
