/**
 * The import rule (README, "Development"): each part imports only the shared folders
 * (`protocol/`, `common/`) and its own files, never another part's internals. So the
 * extension never pulls in the runner or the server, the runner never the server (it
 * reaches the analyzer through its child process, and the CLI's check and dag through
 * their own bundle, both by the messages in `protocol/`), and pure code that two parts
 * use lives in `common/`. `test/` is not a part: a test may import anything.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";

const ROOT = resolve(__dirname, "../..");

/** Part → the top-level folders its relative imports may reach. */
const ALLOWED: Record<string, string[]> = {
  protocol: ["protocol"],
  common: ["common", "protocol"],
  client: ["client", "common", "protocol"],
  server: ["server", "common", "protocol"],
  runner: ["runner", "common", "protocol"],
  // The webview scripts: the shared message types, and the state styling the extension uses too.
  media: ["media", "protocol", "client/state-style"],
  "ts-plugin": ["ts-plugin"],
  sdk: ["sdk"],
  // What a user's workspace looks like: workflow files import "tideflow" and Node only.
  examples: ["examples"],
};

/** Not a part: a test may import anything it tests. */
// Not source: tests, installed and built output, the packaging stage (out/, made by scripts/package.mjs).
const UNRULED = new Set(["test", "node_modules", "dist", "out"]);

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) return files(full);
    return /\.ts$/.test(name) && !name.endsWith(".d.ts") ? [full] : [];
  });
}

test("each part imports only protocol/, common/ and itself", () => {
  const broken: string[] = [];
  for (const [part, allowed] of Object.entries(ALLOWED)) {
    for (const file of files(join(ROOT, part))) {
      const text = readFileSync(file, "utf8");
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
        const target = relative(ROOT, resolve(dirname(file), m[1]));
        if (!allowed.some((a) => target === a || target.startsWith(`${a}/`))) broken.push(`${relative(ROOT, file)} imports ${m[1]} (${target})`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

test("every top-level folder with TypeScript has a rule, except test/", () => {
  const folders = readdirSync(ROOT).filter((name) => !name.startsWith(".") && !UNRULED.has(name) && statSync(join(ROOT, name)).isDirectory());
  const withCode = folders.filter((name) => files(join(ROOT, name)).length > 0);
  assert.deepEqual(withCode.filter((name) => !(name in ALLOWED)), []);
});
