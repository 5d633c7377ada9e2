// A real VS Code for Tideflow: code-server (VS Code 1.100 served to a browser), installed
// once into a cache folder outside the repository, and started in its own process group.
//
//   node scripts/code-server.mjs install        install (or check) the cached code-server
//   node scripts/code-server.mjs path           print the cache folder
//
// As a module: ensureCodeServer(), startCodeServer({...}), codeServerDir(), seedSettings().
// The install follows ../shared/notes/vscode-e2e.md: code-server's own npm postinstall
// refuses to run as root and downloads ripgrep, so the steps are done by hand here.
import { spawn, spawnSync } from "node:child_process";
import {
  copyFileSync, chmodSync, existsSync, mkdirSync, openSync, closeSync, readFileSync,
  readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const CODE_SERVER_VERSION = "4.100.3";
/** Debian packages code-server and the e2e tests need (chromium: the browser that drives it). */
export const DEBIAN_PACKAGES = ["chromium", "ripgrep", "libkrb5-dev"];
const MARKER = ".tideflow-install-complete";

const log = (...a) => console.error("[code-server]", ...a);

/** The cache folder: `$TIDEFLOW_CACHE/code-server-<version>`, default `${XDG_CACHE_HOME:-~/.cache}/tideflow/…`. */
export function codeServerDir(version = CODE_SERVER_VERSION) {
  const base = process.env.TIDEFLOW_CACHE
    ? resolve(process.env.TIDEFLOW_CACHE)
    : join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "tideflow");
  return join(base, `code-server-${version}`);
}

/** code-server's Node entry point inside the cache folder. */
export function codeServerEntry(dir = codeServerDir()) {
  return join(dir, "node_modules", "code-server", "out", "node", "entry.js");
}

export function isInstalled(dir = codeServerDir()) {
  return existsSync(join(dir, MARKER)) && existsSync(codeServerEntry(dir));
}

/** Debian packages of `names` that are not installed (by `dpkg -s`). */
export function missingDebianPackages(names = DEBIAN_PACKAGES) {
  return names.filter((n) => {
    const r = spawnSync("dpkg-query", ["-W", "-f=${Status}", n], { encoding: "utf8" });
    return r.status !== 0 || !/install ok installed/.test(r.stdout);
  });
}

/**
 * Installs the missing Debian packages with apt-get when running as root; otherwise throws
 * an error whose message is the exact command to run (the CLI prints it and exits 1).
 */
export function ensureDebianPackages(names = DEBIAN_PACKAGES) {
  const missing = missingDebianPackages(names);
  if (missing.length === 0) return;
  const cmd = `apt-get install -y --no-install-recommends ${missing.join(" ")}`;
  if (process.getuid?.() !== 0) {
    const err = new Error(`missing Debian packages: ${missing.join(", ")}. Run:\n  sudo apt-get update && sudo ${cmd}`);
    err.code = "MISSING_PACKAGES";
    throw err;
  }
  log(`installing Debian packages: ${missing.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  let r = spawnSync("sh", ["-c", cmd], { stdio: "inherit", env });
  if (r.status !== 0) {
    run("apt-get", ["update"], { env });
    run("sh", ["-c", cmd], { env });
  }
  const still = missingDebianPackages(names);
  if (still.length) throw new Error(`apt-get did not install: ${still.join(", ")}`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: "inherit", ...opts });
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(" ")} (in ${opts.cwd ?? process.cwd()}) exited with ${r.status ?? r.signal}`);
  }
  return r;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === "EPERM";
  }
}

/** A lock folder next to the cache folder, so two processes do not install at once. */
async function withLock(dir, fn) {
  const lock = `${dir}.lock`;
  mkdirSync(dirname(dir), { recursive: true });
  for (let waited = 0; ; waited += 500) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, "pid"), String(process.pid));
      break;
    } catch (e) {
      if (e.code !== "EEXIST") throw e;
      let holder = NaN;
      try { holder = Number(readFileSync(join(lock, "pid"), "utf8")); } catch {}
      if ((Number.isFinite(holder) && !pidAlive(holder)) || (!Number.isFinite(holder) && waited > 5000)) {
        rmSync(lock, { recursive: true, force: true }); // stale: its holder died
        continue;
      }
      if (waited % 15000 === 0) log(`waiting for another install (pid ${holder}) to finish…`);
      await sleep(500);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * Installs code-server `version` into the cache folder once (a marker file records a
 * completed install; a half-finished one is removed and redone). Checks the Debian
 * packages first (see ensureDebianPackages). Returns { dir, entry, installed } where
 * `installed` is true when this call did the install.
 */
export async function ensureCodeServer({ version = CODE_SERVER_VERSION, dir = codeServerDir(version), packages = DEBIAN_PACKAGES } = {}) {
  ensureDebianPackages(packages);
  if (isInstalled(dir)) return { dir, entry: codeServerEntry(dir), installed: false };
  return withLock(dir, async () => {
    if (isInstalled(dir)) return { dir, entry: codeServerEntry(dir), installed: false };
    const t0 = Date.now();
    if (existsSync(dir)) {
      log(`removing an unfinished install in ${dir}`);
      rmSync(dir, { recursive: true, force: true });
    }
    log(`installing code-server ${version} into ${dir} (a few minutes, once)`);
    mkdirSync(dir, { recursive: true });
    // A package.json of its own, so npm installs here and not into a parent project.
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "tideflow-code-server-cache", private: true }, null, 2) + "\n");
    const npm = "npm";
    const quiet = ["--no-audit", "--no-fund", "--loglevel=error"];
    // Under `npm run`, npm's environment names this project (npm_config_local_prefix, npm_package_*):
    // drop those so that npm works on the cache folder; keep the user's settings (cache, registry, nodedir).
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_(package_|lifecycle_|config_local_prefix$)/i.test(k)));
    const o = { cwd: dir, env };
    run(npm, ["install", "--ignore-scripts", ...quiet, `code-server@${version}`], o);
    const vscode = join(dir, "node_modules", "code-server", "lib", "vscode");
    run(npm, ["install", "--omit=dev", "--ignore-scripts", ...quiet], { ...o, cwd: vscode });
    // node-pty's own install script fails on an `npx node-gyp` step after pty.node is built:
    // rebuild each, then check the binaries below rather than npm's exit code.
    const rebuildOutput = [];
    for (const mod of ["kerberos", "node-pty", "@vscode/spdlog", "native-watchdog"]) {
      log(`npm rebuild ${mod}`);
      const r = run(npm, ["rebuild", mod, ...quiet], { ...o, cwd: vscode, allowFail: true, stdio: "pipe", encoding: "utf8" });
      if (r.status !== 0) rebuildOutput.push(`npm rebuild ${mod} exited with ${r.status ?? r.signal}:\n${r.stdout}${r.stderr}`);
    }
    const rgDir = join(vscode, "node_modules", "@vscode", "ripgrep", "bin");
    mkdirSync(rgDir, { recursive: true });
    copyFileSync("/usr/bin/rg", join(rgDir, "rg"));
    chmodSync(join(rgDir, "rg"), 0o755);
    const asar = join(vscode, "node_modules.asar");
    let linked = false;
    try { linked = readlinkSync(asar) === "node_modules"; } catch {}
    if (!linked) {
      rmSync(asar, { recursive: true, force: true });
      symlinkSync("node_modules", asar);
    }
    run(npm, ["install", "--omit=dev", "--ignore-scripts", ...quiet], { ...o, cwd: join(vscode, "extensions") });
    run(npm, ["rebuild", "argon2", ...quiet], o);

    const natives = [
      join(vscode, "node_modules", "node-pty", "build", "Release", "pty.node"),
      join(vscode, "node_modules", "kerberos", "build", "Release", "kerberos.node"),
      join(vscode, "node_modules", "@vscode", "spdlog", "build", "Release", "spdlog.node"),
      join(vscode, "node_modules", "native-watchdog", "build", "Release", "watchdog.node"),
    ];
    const absent = natives.filter((f) => !existsSync(f));
    if (absent.length) {
      throw new Error(`native modules missing after the build:\n  ${absent.join("\n  ")}\n${rebuildOutput.join("\n")}`);
    }
    const v = spawnSync(process.execPath, [codeServerEntry(dir), "--version"], { encoding: "utf8", env, timeout: 60000 });
    if (v.status !== 0 || !v.stdout.includes(version)) {
      throw new Error(`code-server --version failed (${v.status}): ${v.stdout}${v.stderr}`);
    }
    writeFileSync(join(dir, MARKER), JSON.stringify({ version, node: process.version, installedAt: new Date().toISOString() }) + "\n");
    log(`code-server ${version} installed in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    return { dir, entry: codeServerEntry(dir), installed: true };
  });
}

/** A free TCP port on 127.0.0.1 (0 = let the system pick one), or undefined when `port` is taken. */
export function freePort(port = 0) {
  return new Promise((res) => {
    const srv = createServer();
    srv.once("error", () => res(undefined));
    srv.listen(port, "127.0.0.1", () => {
      const p = srv.address().port;
      srv.close(() => res(p));
    });
  });
}

/** User settings that keep the workbench quiet and deterministic for people and tests. */
export function quietSettings({ trust }) {
  return {
    "workbench.startupEditor": "none",
    "workbench.welcomePage.walkthroughs.openOnInstall": false,
    "workbench.tips.enabled": false,
    "workbench.enableExperiments": false,
    "workbench.settings.enableNaturalLanguageSearch": false,
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "update.showReleaseNotes": false,
    "extensions.autoUpdate": false,
    "extensions.autoCheckUpdates": false,
    "extensions.ignoreRecommendations": true,
    "security.workspace.trust.enabled": trust === false,
    "security.workspace.trust.startupPrompt": "never",
    "security.workspace.trust.untrustedFiles": "open",
    // The runner listens on a random loopback port: no "port forwarded" notifications.
    "remote.autoForwardPorts": false,
    "git.openRepositoryInParentFolders": "never",
    "git.autofetch": false,
    "typescript.disableAutomaticTypeAcquisition": true,
    "typescript.surveys.enabled": false,
    "npm.fetchOnlinePackageInfo": false,
    "chat.commandCenter.enabled": false,
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    "window.confirmBeforeClose": "never",
  };
}

/** Writes (merges) `userDataDir/User/settings.json` with quietSettings() and `extra`. */
export function seedSettings(userDataDir, { trust = true, extra = {} } = {}) {
  const file = join(userDataDir, "User", "settings.json");
  mkdirSync(dirname(file), { recursive: true });
  let existing = {};
  try { existing = JSON.parse(readFileSync(file, "utf8")); } catch {}
  writeFileSync(file, JSON.stringify({ ...existing, ...quietSettings({ trust }), ...extra }, null, 2) + "\n");
  return file;
}

/** pids of the processes whose parent chain leads to `root` (from /proc). */
export function descendants(root) {
  const children = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try { stat = readFileSync(`/proc/${name}/stat`, "utf8"); } catch { continue; }
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(Number(name));
  }
  const out = [];
  const stack = [root];
  while (stack.length) {
    for (const c of children.get(stack.pop()) ?? []) {
      out.push(c);
      stack.push(c);
    }
  }
  return out;
}

/** pids in process group `pgid` (from /proc). */
export function groupMembers(pgid) {
  const out = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z" && Number(fields[2]) === pgid) out.push(Number(name));
    } catch {}
  }
  return out;
}

function isZombieOrGone(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

function tail(file, n = 40) {
  try { return readFileSync(file, "utf8").split("\n").slice(-n).join("\n"); } catch { return ""; }
}

/** Installs a .vsix into `extensionsDir` with code-server's CLI (`--install-extension --force`). */
export function installExtension({ vsix, userDataDir, extensionsDir, entry = codeServerEntry() }) {
  const r = spawnSync(process.execPath, [entry, "--user-data-dir", userDataDir, "--extensions-dir", extensionsDir,
    "--install-extension", resolve(vsix), "--force"], { encoding: "utf8", timeout: 120000 });
  const out = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  if (r.status !== 0 || /Failed Installing/i.test(out) || !/successfully installed/i.test(out)) {
    throw new Error(`installing ${vsix} failed (exit ${r.status ?? r.signal}):\n${out}`);
  }
  return out.trim();
}

/**
 * Starts code-server on 127.0.0.1 in its own process group and waits until it answers HTTP.
 *   workspace      folder to open
 *   userDataDir    VS Code user data (settings are seeded: see quietSettings)
 *   extensionsDir  where extensions are installed
 *   port           default: a free port
 *   trust          true: the workspace is trusted (--disable-workspace-trust);
 *                  false: workspace trust is on and the folder opens in restricted mode
 *   vsix           a .vsix to install first
 *   settings       extra user settings
 *   env            extra environment for code-server (and so the extension host)
 *   logFile        code-server's stdout/stderr; default `<userDataDir>/code-server.log`
 * Returns { url, workbenchUrl, port, pid, logFile, stop() }. stop() ends the process group and
 * every descendant that left it (SIGTERM, then SIGKILL after `graceMs`), and throws if
 * anything is still alive after that.
 */
export async function startCodeServer({
  workspace, userDataDir, extensionsDir, port, trust = true, vsix, settings = {}, env = {},
  logFile, timeoutMs = 90000,
}) {
  const { entry } = await ensureCodeServer();
  workspace = resolve(workspace);
  userDataDir = resolve(userDataDir);
  extensionsDir = resolve(extensionsDir);
  mkdirSync(userDataDir, { recursive: true });
  mkdirSync(extensionsDir, { recursive: true });
  seedSettings(userDataDir, { trust, extra: settings });
  if (vsix) installExtension({ vsix, userDataDir, extensionsDir, entry });

  if (port === undefined) port = await freePort(0);
  else if ((await freePort(port)) === undefined) throw new Error(`port ${port} on 127.0.0.1 is in use`);
  logFile = resolve(logFile ?? join(userDataDir, "code-server.log"));
  // A config file of its own: code-server would otherwise write ~/.config/code-server/config.yaml.
  const config = join(userDataDir, "code-server.yaml");
  if (!existsSync(config)) writeFileSync(config, "auth: none\ncert: false\n");
  const fd = openSync(logFile, "a");
  const args = [entry, "--config", config, "--auth", "none", "--bind-addr", `127.0.0.1:${port}`, "--disable-telemetry",
    "--disable-update-check", "--disable-getting-started-override", "--user-data-dir", userDataDir,
    "--extensions-dir", extensionsDir, ...(trust === false ? [] : ["--disable-workspace-trust"]), workspace];
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ["ignore", fd, fd],
    env: { ...process.env, ...env },
  });
  closeSync(fd);
  child.unref();
  const pid = child.pid;
  let exited = null;
  child.once("exit", (code, signal) => { exited = { code, signal }; });

  let stopped = false;
  const stop = async ({ graceMs = 5000 } = {}) => {
    if (stopped) return;
    stopped = true;
    const tree = new Set([pid, ...descendants(pid)]);
    const signalAll = (sig) => {
      try { process.kill(-pid, sig); } catch {}
      for (const p of tree) { try { process.kill(p, sig); } catch {} }
      for (const p of groupMembers(pid)) tree.add(p);
    };
    const alive = () => [...new Set([...tree, ...groupMembers(pid)])].filter((p) => !isZombieOrGone(p));
    signalAll("SIGTERM");
    for (const t0 = Date.now(); alive().length && Date.now() - t0 < graceMs;) await sleep(100);
    if (alive().length) {
      signalAll("SIGKILL");
      for (const t0 = Date.now(); alive().length && Date.now() - t0 < 3000;) await sleep(100);
    }
    const left = alive();
    if (left.length) throw new Error(`code-server processes still alive after SIGKILL: ${left.join(", ")}`);
  };

  const base = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  for (;;) {
    if (exited) {
      throw new Error(`code-server exited (${exited.code ?? exited.signal}) before it answered; ${logFile}:\n${tail(logFile)}`);
    }
    try {
      const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) break;
    } catch {}
    if (Date.now() - t0 > timeoutMs) {
      await stop().catch(() => {});
      throw new Error(`code-server did not answer on ${base} within ${timeoutMs} ms; ${logFile}:\n${tail(logFile)}`);
    }
    await sleep(200);
  }
  return {
    url: `${base}/`,
    workbenchUrl: `${base}/?folder=${encodeURIComponent(workspace).replace(/%2F/g, "/")}`,
    port, pid, logFile, workspace, userDataDir, extensionsDir,
    stop,
  };
}

// CLI
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const cmd = process.argv[2] ?? "install";
  try {
    if (cmd === "install") {
      const t0 = Date.now();
      const { dir, installed } = await ensureCodeServer();
      console.log(`code-server ${CODE_SERVER_VERSION}: ${installed ? "installed" : "already installed"} in ${dir} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    } else if (cmd === "path") {
      console.log(codeServerDir());
    } else if (cmd === "status") {
      const dir = codeServerDir();
      console.log(`${dir}: ${isInstalled(dir) ? "installed" : "not installed"}; missing Debian packages: ${missingDebianPackages().join(" ") || "none"}`);
    } else {
      console.error("usage: node scripts/code-server.mjs install|path|status");
      process.exit(2);
    }
  } catch (e) {
    console.error(e.code === "MISSING_PACKAGES" ? e.message : e.stack ?? String(e));
    process.exit(1);
  }
}
