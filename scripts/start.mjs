// `npm start`: Tideflow in a real VS Code, in your browser.
//
// Builds and packages the extension (scripts/package.mjs), installs code-server once into a
// cache outside the repository (scripts/code-server.mjs), installs the vsix into it and opens
// examples/ (the folder itself, trusted, so runs work at once). Runs until Ctrl-C, then stops
// code-server with everything it started.
//
//   PORT=9000 npm start        a fixed port (default 8080, or a free one when 8080 is taken)
//   npm start -- --no-build    package the current dist/ as it is
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { DEBIAN_PACKAGES, ensureCodeServer, freePort, startCodeServer } from "./code-server.mjs";
import { ROOT, packageExtension } from "./package.mjs";

const argv = process.argv.slice(2);
const t0 = Date.now();
const say = (s) => console.log(`[start] ${s}`);

try {
  say("building and packaging the extension…");
  const { vsix } = await packageExtension({ build: !argv.includes("--no-build"), quiet: true });
  say("checking code-server (installed once into a cache, ~3-5 minutes the first time)…");
  // The browser (chromium) is only for the tests: npm start needs what code-server needs.
  const { dir } = await ensureCodeServer({ packages: DEBIAN_PACKAGES.filter((p) => p !== "chromium") });

  let port;
  if (process.env.PORT) {
    port = Number(process.env.PORT);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`PORT=${process.env.PORT} is not a port number`);
    if ((await freePort(port)) === undefined) throw new Error(`port ${port} on 127.0.0.1 is in use; choose another with PORT=…`);
  } else {
    port = (await freePort(8080)) ?? (await freePort(0));
  }

  const workspace = join(ROOT, "examples");
  const state = join(ROOT, "out", "code-server");
  // A fresh extensions folder each start, so the vsix just built is the one that runs; the
  // user data (settings, open editors, layout) is kept between starts.
  rmSync(join(state, "extensions"), { recursive: true, force: true });
  const cs = await startCodeServer({
    workspace, port, trust: true, vsix,
    userDataDir: join(state, "user-data"), extensionsDir: join(state, "extensions"),
  });

  let stopping = false;
  const stop = async (code) => {
    if (stopping) return;
    stopping = true;
    say("stopping code-server…");
    try {
      await cs.stop();
      say("stopped: no code-server process is left.");
    } catch (e) {
      console.error(`[start] ${e.message}`);
      code = 1;
    }
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));
  process.on("SIGHUP", () => void stop(0));

  // If code-server dies on its own, say so and stop. If our parent goes away (`kill` of the npm
  // process: npm's `sh -c` does not pass the signal on), stop too rather than leave code-server.
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(watch);
      say("the parent process is gone");
      void stop(0);
      return;
    }
    try {
      process.kill(cs.pid, 0);
    } catch {
      clearInterval(watch);
      console.error(`[start] code-server exited; its log is ${cs.logFile}:`);
      if (existsSync(cs.logFile)) console.error(readFileSync(cs.logFile, "utf8").split("\n").slice(-30).join("\n"));
      void stop(1);
    }
  }, 1000);

  console.log("");
  console.log(`  Tideflow is ready: open ${cs.workbenchUrl}`);
  console.log("");
  console.log(`  VS Code ${"1.100"} (code-server, from ${dir}) with ${vsix.slice(ROOT.length + 1)} installed,`);
  console.log(`  on the folder examples/, opened as a trusted workspace (workspace trust is off) so that runs work at once.`);
  console.log(`  Listening on 127.0.0.1 only, without a password. code-server's log: ${cs.logFile}`);
  console.log(`  Ready in ${((Date.now() - t0) / 1000).toFixed(1)} s. Press Ctrl-C to stop.`);
  console.log("");
} catch (e) {
  console.error(`[start] ${e.message}`);
  process.exit(1);
}
