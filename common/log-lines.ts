/**
 * Reading attempt logs (pure; tested in test/unit/client.test.ts): lines are
 * `<time> <stdout|stderr|system> <LEVEL> <text>`. The extension's run diagnostics and the
 * CLI's end-of-run report both say why an attempt failed from them.
 */

type Parsed = RegExpExecArray | null;

function parse(text: string): { lines: string[]; parsed: Parsed[] } {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  return { lines, parsed: lines.map((l) => /^\S+ (stdout|stderr|system) ([A-Z]+) (.*)$/.exec(l)) };
}

/** The text of the last parsed line that `ok` accepts (stream, level, text). */
function findLast(parsed: Parsed[], ok: (stream: string, level: string, text: string) => boolean): string | undefined {
  for (let i = parsed.length - 1; i >= 0; i--) {
    const m = parsed[i];
    if (m && ok(m[1], m[2], m[3])) return m[3];
  }
  return undefined;
}

/** The task's own last error: a stderr line, or an ERROR it logged, that says something. */
export function lastTaskErrorLine(text: string): string | undefined {
  return findLast(parse(text).parsed, (stream, level, line) => stream !== "system" && (stream === "stderr" || level === "ERROR") && line.trim() !== "");
}

/**
 * The line that says why an attempt failed: the task's own last error (a stderr line, or
 * an ERROR it logged), else the runner's (`system`: "exit code 3 after 11 ms"), else the
 * last line.
 */
export function lastErrorLine(text: string): string | undefined {
  const { lines, parsed } = parse(text);
  return (
    findLast(parsed, (stream, level) => stream !== "system" && (stream === "stderr" || level === "ERROR")) ??
    findLast(parsed, (_, level) => level === "ERROR") ??
    (lines.length > 0 ? lines[lines.length - 1] : undefined)
  );
}
