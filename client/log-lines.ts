/** Reading attempt logs (pure: no VS Code API, tested in test/unit/client.test.ts). */

/**
 * The line that says why an attempt failed: the task's own last error (a stderr line, or
 * an ERROR it logged), else the runner's (`system`: "exit code 3 after 11ms"), else the
 * last line. Lines are `<time> <stdout|stderr|system> <LEVEL> <text>`.
 */
export function lastErrorLine(text: string): string | undefined {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const parsed = lines.map((l) => /^\S+ (stdout|stderr|system) ([A-Z]+) (.*)$/.exec(l));
  const find = (ok: (stream: string, level: string) => boolean) => {
    for (let i = parsed.length - 1; i >= 0; i--) {
      const m = parsed[i];
      if (m && ok(m[1], m[2])) return m[3];
    }
    return undefined;
  };
  return (
    find((stream, level) => stream !== "system" && (stream === "stderr" || level === "ERROR")) ??
    find((_, level) => level === "ERROR") ??
    (lines.length > 0 ? lines[lines.length - 1] : undefined)
  );
}
