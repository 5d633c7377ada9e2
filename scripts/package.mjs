// Packages the VS Code extension: `npm run package` → out/tideflow-<version>-<target>.vsix.
//
//   node scripts/package.mjs [--no-build] [--no-minify] [--target linux-x64] [--out DIR]
//
// It builds (node esbuild.mjs --minify), stages a clean folder (out/stage-<target>/) with only
// what runs: a package.json without the development fields, dist/ without source maps,
// syntaxes/, media/, sdk/ (the types of `import ... from "tideflow"`), LICENSE, README.md, and
// node_modules/ with esbuild + its native binary (@esbuild/<target>: the runner bundles
// workflow files with it) and the TypeScript server plugin (ts-plugin/ →
// node_modules/tideflow-ts-plugin, which VS Code resolves contributes.typescriptServerPlugins
// from). Then `vsce package --target <target>` there, and a check of the vsix's file list.
//
// As a module: packageExtension(options) → { vsix, bytes, files }, defaultVsixPath(), vsixTarget().
import { spawnSync } from "node:child_process";
import {
  chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync,
  statSync, writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(ROOT, "package.json"));
const log = (...a) => console.error("[package]", ...a);

/** The vsce target of this machine: `${process.platform}-${process.arch}` (linux-x64, darwin-arm64, win32-x64…). */
export function vsixTarget(platform = process.platform, arch = process.arch) {
  return `${platform}-${arch}`;
}

/** out/tideflow-<version>-<target>.vsix */
export function defaultVsixPath(target = vsixTarget()) {
  const { name, version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  return join(ROOT, "out", `${name}-${version}-${target}.vsix`);
}

/** The files whose change makes a packaged vsix stale (sources, build outputs, manifest, assets). */
export function packagingInputs() {
  const dirs = ["client", "server", "runner", "common", "protocol", "sdk", "ts-plugin", "syntaxes", "media", "dist"];
  const files = ["package.json", "esbuild.mjs", "LICENSE", "README.md", fileURLToPath(import.meta.url)];
  const out = files.map((f) => resolve(ROOT, f)).filter(existsSync);
  const walk = (d) => {
    let entries;
    try { entries = readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) { if (e.name !== "node_modules") walk(p); } else out.push(p);
    }
  };
  for (const d of dirs) walk(join(ROOT, d));
  return out;
}

/** True when `vsix` is missing or older than any packaging input. */
export function isStale(vsix = defaultVsixPath()) {
  if (!existsSync(vsix)) return true;
  const t = statSync(vsix).mtimeMs;
  return packagingInputs().some((f) => { try { return statSync(f).mtimeMs > t; } catch { return false; } });
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ["ignore", "inherit", "inherit"], ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${r.status ?? r.signal}`);
  return r;
}

/** A TypeScript source (not a declaration file): never shipped, except sdk/index.ts. */
const isSource = (rel) => /\.[cm]?tsx?$/.test(rel) && !/\.d\.[cm]?ts$/.test(rel);

/** Copies a folder, leaving out source maps and the entries `skip` rejects. */
function copyTree(from, to, skip = () => false) {
  cpSync(from, to, {
    recursive: true,
    dereference: true,
    filter: (src) => {
      const rel = relative(from, src);
      return !(rel && (src.endsWith(".map") || skip(rel)));
    },
  });
}

/** The entries of a zip file (names and uncompressed sizes), from its central directory. */
export function zipEntries(file) {
  const buf = readFileSync(file);
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65557); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) throw new Error(`${file}: not a zip file`);
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const entries = [];
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error(`${file}: bad central directory`);
    const size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28), extraLen = buf.readUInt16LE(p + 30), commentLen = buf.readUInt16LE(p + 32);
    const attr = buf.readUInt32LE(p + 38);
    entries.push({ name: buf.toString("utf8", p + 46, p + 46 + nameLen), size, mode: attr >>> 16 });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** Checks the vsix holds what the extension needs at run time and nothing of the sources. */
export function checkVsix(vsix, { target = vsixTarget(), tsPlugin = true } = {}) {
  const entries = zipEntries(vsix);
  const names = new Set(entries.map((e) => e.name));
  const required = [
    "extension/package.json", "extension/LICENSE.txt", "extension/readme.md",
    ...["extension", "server", "runner", "worker", "spawner", "analyze", "sdk", "cli", "cli-files"].map((n) => `extension/dist/${n}.js`),
    "extension/sdk/index.ts", "extension/syntaxes/tideflow-log.tmLanguage.json",
    "extension/node_modules/esbuild/package.json", "extension/node_modules/esbuild/lib/main.js",
    `extension/node_modules/@esbuild/${target}/package.json`,
    `extension/node_modules/@esbuild/${target}/${target.startsWith("win32") ? "esbuild.exe" : "bin/esbuild"}`,
    ...(tsPlugin ? ["extension/node_modules/tideflow-ts-plugin/package.json", "extension/node_modules/tideflow-ts-plugin/index.js"] : []),
  ];
  const problems = required.filter((n) => !names.has(n)).map((n) => `missing ${n}`);
  for (const { name } of entries) {
    if (name.endsWith(".map")) problems.push(`source map ${name}`);
    if (/^extension\/(client|server|runner|common|protocol|test|scripts|examples|ts-plugin|\.ci|\.tideflow)\//.test(name)) problems.push(`source/test file ${name}`);
    if (name.startsWith("extension/") && !name.startsWith("extension/node_modules/") && /\.ts$/.test(name)
      && !name.endsWith(".d.ts") && name !== "extension/sdk/index.ts") problems.push(`TypeScript source ${name}`);
  }
  const bin = entries.find((e) => e.name === `extension/node_modules/@esbuild/${target}/bin/esbuild`);
  if (bin && !target.startsWith("win32") && !(bin.mode & 0o100)) problems.push(`${bin.name} is not executable in the zip (mode ${bin.mode.toString(8)})`);
  if (problems.length) throw new Error(`${vsix}:\n  ${problems.join("\n  ")}`);
  return entries;
}

/**
 * Builds (unless build: false) and packages the extension.
 * Returns { vsix, bytes, files: number, stage }.
 */
export async function packageExtension({ build = true, minify = true, target = vsixTarget(), out, quiet = false } = {}) {
  const t0 = Date.now();
  const vsix = out ? resolve(out) : defaultVsixPath(target);
  const outDir = dirname(vsix);
  if (build) run(process.execPath, [join(ROOT, "esbuild.mjs"), ...(minify ? ["--minify"] : [])], { cwd: ROOT });

  const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  const dist = join(ROOT, "dist");
  for (const n of ["extension", "server", "runner", "worker", "spawner", "analyze", "sdk", "cli", "cli-files"]) {
    if (!existsSync(join(dist, `${n}.js`))) throw new Error(`dist/${n}.js is missing: run \`node esbuild.mjs\` first`);
  }

  const stage = join(outDir, `stage-${target}`);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });

  // dist/: the bundles (without source maps, and without the comment that points at them).
  copyTree(dist, join(stage, "dist"));
  for (const f of readdirSync(join(stage, "dist"), { recursive: true })) {
    const p = join(stage, "dist", String(f));
    if (!p.endsWith(".js") || !statSync(p).isFile()) continue;
    const text = readFileSync(p, "utf8");
    const stripped = text.replace(/\n\/\/# sourceMappingURL=[^\n]*\.map\s*$/, "\n");
    if (stripped !== text) writeFileSync(p, stripped);
  }
  chmodSync(join(stage, "dist", "cli.js"), 0o755);

  copyTree(join(ROOT, "syntaxes"), join(stage, "syntaxes"));
  if (existsSync(join(ROOT, "media"))) copyTree(join(ROOT, "media"), join(stage, "media"), (rel) => rel === ".gitkeep" || /(^|\/)tsconfig[^/]*\.json$/.test(rel) || isSource(rel));
  // The SDK's source: the types of `import ... from "tideflow"` for a workspace without tsconfig
  // paths (dist/sdk.d.ts, when esbuild.mjs writes it, is in dist/ already).
  mkdirSync(join(stage, "sdk"));
  for (const f of ["index.ts", "package.json"]) copyFileSync(join(ROOT, "sdk", f), join(stage, "sdk", f));
  copyFileSync(join(ROOT, "LICENSE"), join(stage, "LICENSE"));
  copyFileSync(join(ROOT, "README.md"), join(stage, "README.md"));
  // README links to docs/: ship them, and keep the links relative (the extension page opens them in place).
  cpSync(join(ROOT, "docs"), join(stage, "docs"), { recursive: true });
  for (const f of ["CHANGELOG.md", "icon.png"]) if (existsSync(join(ROOT, f))) copyFileSync(join(ROOT, f), join(stage, f));

  // node_modules/: esbuild and the native binary of this target, nothing else of npm's.
  const nm = join(stage, "node_modules");
  const esbuildDir = dirname(require.resolve("esbuild/package.json"));
  const esbuildVersion = JSON.parse(readFileSync(join(esbuildDir, "package.json"), "utf8")).version;
  // Its JS API runs @esbuild/<target>/bin/esbuild; bin/esbuild (the CLI, a second copy of the
  // binary after esbuild's install script) and install.js are not needed.
  copyTree(esbuildDir, join(nm, "esbuild"), (rel) => rel === "install.js" || rel === "bin" || rel.startsWith("bin/"));
  const nativeName = `@esbuild/${target}`;
  let nativeDir;
  try {
    nativeDir = dirname(createRequire(join(esbuildDir, "package.json")).resolve(`${nativeName}/package.json`));
  } catch {
    throw new Error(`${nativeName} is not installed (esbuild's native binary for ${target}); \`npm ci\` on a ${target} machine installs it`);
  }
  copyTree(nativeDir, join(nm, nativeName));

  // The TypeScript server plugin: ts-plugin/ → node_modules/tideflow-ts-plugin/ (runtime files only).
  const dependencies = { esbuild: esbuildVersion };
  const pluginSrc = join(ROOT, "ts-plugin");
  let tsPlugin = false;
  if (existsSync(join(pluginSrc, "package.json"))) {
    const pluginManifest = JSON.parse(readFileSync(join(pluginSrc, "package.json"), "utf8"));
    const main = pluginManifest.main ?? "index.js";
    if (!existsSync(join(pluginSrc, main))) throw new Error(`ts-plugin/${main} is missing: build it (node esbuild.mjs) first`);
    copyTree(pluginSrc, join(nm, pluginManifest.name), (rel) =>
      /(^|\/)(test|tests|__tests__|node_modules)(\/|$)/.test(rel) || isSource(rel) || /\.test\.[cm]?js$/.test(rel));
    dependencies[pluginManifest.name] = pluginManifest.version;
    tsPlugin = true;
  } else {
    console.warn(`[package] WARNING: ts-plugin/ is absent; the vsix has no TypeScript server plugin (node_modules/tideflow-ts-plugin)`);
  }

  // Node's types, what `/// <reference types="node" />` in dist/sdk.d.ts (and the TS server plugin's
  // fallback) resolves to in a workspace without @types/node: @types/node and its dependency
  // undici-types, declarations + package.json + LICENSE only. Listed as dependencies so vsce keeps them.
  const nodeTypesDir = dirname(require.resolve("@types/node/package.json"));
  const undiciTypesDir = dirname(createRequire(join(nodeTypesDir, "package.json")).resolve("undici-types/package.json"));
  for (const [name, dir] of [["@types/node", nodeTypesDir], ["undici-types", undiciTypesDir]]) {
    copyTree(dir, join(nm, name), (rel) =>
      !(statSync(join(dir, rel)).isDirectory() || rel.endsWith(".d.ts") || rel === "package.json" || rel === "LICENSE"));
    dependencies[name] = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).version;
  }

  // package.json: the manifest without the development fields.
  const staged = { ...manifest, dependencies };
  for (const k of ["scripts", "devDependencies", "optionalDependencies", "private", "bin", "files", "workspaces", "overrides"]) delete staged[k];
  writeFileSync(join(stage, "package.json"), JSON.stringify(staged, null, 2) + "\n");
  // Everything staged ships; an ignore file of its own keeps vsce from warning that there is none.
  writeFileSync(join(stage, ".vscodeignore"), "# Staged by scripts/package.mjs: only run-time files are here.\n");

  // vsce: --target for the native binary; npm dependencies resolved from the staged node_modules.
  mkdirSync(outDir, { recursive: true });
  const tmp = `${vsix}.partial`;
  rmSync(tmp, { force: true });
  const vsce = join(dirname(require.resolve("@vscode/vsce/package.json")), "vsce");
  const args = [vsce, "package", "--target", target, "--out", tmp, "--no-update-package-json", "--no-git-tag-version", "--no-rewrite-relative-links",
    ...(manifest.repository ? [] : ["--allow-missing-repository"])];
  // vsce runs `npm list` in the stage: not with this project's npm_config_local_prefix / npm_package_*.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_(package_|lifecycle_|config_local_prefix$)/i.test(k)));
  run(process.execPath, args, { cwd: stage, env, stdio: ["ignore", quiet ? "ignore" : "inherit", "inherit"] });
  const entries = checkVsix(tmp, { target, tsPlugin });
  renameSync(tmp, vsix);
  const bytes = statSync(vsix).size;
  log(`${relative(process.cwd(), vsix) || vsix}: ${(bytes / 1024 / 1024).toFixed(2)} MB, ${entries.length} files, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { vsix, bytes, files: entries.length, stage, tsPlugin };
}

// CLI
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const opt = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  try {
    const { vsix } = await packageExtension({
      build: !argv.includes("--no-build"),
      minify: !argv.includes("--no-minify"),
      target: opt("--target") ?? vsixTarget(),
      out: opt("--out"),
    });
    console.log(vsix);
  } catch (e) {
    console.error(`[package] ${e.message}`);
    process.exit(1);
  }
}
