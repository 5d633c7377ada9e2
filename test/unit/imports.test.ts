/**
 * The import rule: each part imports only the shared folders (`protocol/`, `common/`) and
 * its own files, never another part's internals. So the extension never pulls in the
 * runner or the server, and pure code that two parts use lives in `common/`.
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
  // The webview scripts: the shared message types, and the state styling the extension uses too.
  media: ["media", "protocol", "client/state-style"],
  "ts-plugin": ["ts-plugin"],
  sdk: ["sdk"],
};

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
