/**
 * The CLI's command table types, its option parser, its help and its "did you mean": all
 * read one `CommandSpec` per command, so that what `--help` says is what is parsed.
 * No Node argument-parser messages reach the user.
 */
import { UsageError } from "../../common/cli-usage";

export type OptionType = "boolean" | "string" | "integer";

export interface OptionSpec {
  type: OptionType;
  /** The value's placeholder in help: `ID`, `N`, `YYYY-MM-DD`. */
  value?: string;
  /** May be given more than once; the values are collected in order. */
  multiple?: boolean;
  short?: string;
  /** integer: the smallest value allowed. */
  min?: number;
  /** string: the only values allowed. */
  choices?: readonly string[];
  /** string: the value's shape, with what to say when it does not match. */
  pattern?: { test: RegExp; expected: string };
  /** string: what is wrong with a value of the right shape, completing "--name value …" (e.g. "is not a calendar date: …"). */
  check?: (raw: string) => string | undefined;
  help: string;
}

/** Whether a command talks to the runner, and whether it may start one. */
export type RunnerUse = "none" | "reads" | "starts";

export interface CommandSpec {
  name: string;
  /** The synopsis after `tideflow `, as in the usage. */
  usage: string;
  /** What the command does, for `tideflow <cmd> --help` (first line: for `tideflow --help`). */
  summary: string;
  /** How many positional arguments it takes, and what they are, for the error when the count is wrong. */
  positionals: { min: number; max: number; what: string };
  options: Record<string, OptionSpec>;
  /** Options of a sibling command given here by mistake, with what to say instead. */
  elsewhere?: Record<string, string>;
  runner: RunnerUse;
  run(args: Args): Promise<number>;
}

/** Every command takes these. */
export const COMMON_OPTIONS: Record<string, OptionSpec> = {
  workspace: { type: "string", value: "DIR", help: "the workspace (default: the current directory)" },
  help: { type: "boolean", short: "h", help: "this help" },
};

type Value = string | number | boolean | string[];

/** A command's parsed and validated arguments. */
export class Args {
  constructor(
    private readonly spec: CommandSpec,
    private readonly values: Map<string, Value>,
    readonly positionals: string[],
  ) {}

  private get(name: string, type: OptionType): Value | undefined {
    const o = this.spec.options[name] ?? COMMON_OPTIONS[name];
    // A handler asking for an option its table entry lacks is a bug, not a usage error.
    if (!o || o.type !== type) throw new Error(`${this.spec.name} has no ${type} option --${name}`);
    return this.values.get(name);
  }

  flag(name: string): boolean {
    return this.get(name, "boolean") === true;
  }

  string(name: string): string | undefined {
    const v = this.get(name, "string");
    return Array.isArray(v) ? v[v.length - 1] : (v as string | undefined);
  }

  list(name: string): string[] | undefined {
    return this.get(name, "string") as string[] | undefined;
  }

  integer(name: string): number | undefined {
    return this.get(name, "integer") as number | undefined;
  }

  /** Whether the option was given at all (to refuse options that do not apply). */
  has(name: string): boolean {
    return this.values.has(name);
  }
}

/** Parses `argv` (the words after the command name) against the command's table entry. */
export function parseCommand(spec: CommandSpec, argv: string[]): Args {
  const options = { ...spec.options, ...COMMON_OPTIONS };
  const byShort = new Map(Object.entries(options).flatMap(([name, o]) => (o.short ? [[o.short, name] as const] : [])));
  const values = new Map<string, Value>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string;
    let inline: string | undefined;
    if (word.startsWith("--")) {
      const eq = word.indexOf("=");
      name = eq < 0 ? word.slice(2) : word.slice(2, eq);
      inline = eq < 0 ? undefined : word.slice(eq + 1);
    } else if (/^-[A-Za-z]$/.test(word)) {
      const long = byShort.get(word.slice(1));
      if (!long) throw new UsageError(`unknown option ${word} for ${spec.name}`);
      name = long;
    } else {
      positionals.push(word);
      continue;
    }
    const o = options[name];
    if (!o && spec.elsewhere?.[name]) throw new UsageError(spec.elsewhere[name]);
    if (!o) {
      const guess = didYouMean(name, Object.keys(options));
      throw new UsageError(`unknown option --${name} for ${spec.name}${guess ? `; did you mean --${guess}?` : ""}`);
    }
    if (o.type === "boolean") {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value, got "${inline}"`);
      values.set(name, true);
      continue;
    }
    let raw = inline;
    if (raw === undefined) {
      const next = argv[i + 1];
      // `--task --downstream` forgot the value; `--parallel -1` has a (bad) one.
      if (next === undefined || (next.startsWith("--") && next.slice(2).split("=")[0] in options)) {
        throw new UsageError(`--${name} needs a value (${o.value ?? "a value"})`);
      }
      raw = next;
      i++;
    }
    const value = checkValue(name, o, raw);
    if (o.multiple) values.set(name, [...((values.get(name) as string[] | undefined) ?? []), value as string]);
    else values.set(name, value);
  }
  if (values.get("help") === true) return new Args(spec, values, positionals);
  const { min, max } = spec.positionals;
  if (positionals.length < min || positionals.length > max) {
    const extra = positionals.length > max ? `; unexpected ${positionals.slice(max).map((p) => `"${p}"`).join(" ")}` : "";
    throw new UsageError(`${spec.name} takes ${spec.positionals.what}${extra}`);
  }
  return new Args(spec, values, positionals);
}

function checkValue(name: string, o: OptionSpec, raw: string): string | number {
  if (raw === "") throw new UsageError(`--${name} needs a value (${o.value ?? "a value"}), got ""`);
  if (o.type === "integer") {
    const n = /^-?\d+$/.test(raw) ? Number(raw) : NaN;
    const min = o.min ?? 0;
    if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} expects an integer of ${min} or more, got "${raw}"`);
    return n;
  }
  if (o.choices && !o.choices.includes(raw)) {
    const guess = didYouMean(raw, o.choices);
    throw new UsageError(`--${name} expects ${orList(o.choices)}, got "${raw}"${guess ? `; did you mean ${guess}?` : ""}`);
  }
  if (o.pattern && !o.pattern.test.test(raw)) throw new UsageError(`--${name} expects ${o.pattern.expected}, got "${raw}"`);
  const problem = o.check?.(raw);
  if (problem !== undefined) throw new UsageError(`--${name} ${raw} ${problem}`);
  return raw;
}

export function orList(words: readonly string[]): string {
  return words.length <= 1 ? words.join("") : `${words.slice(0, -1).join(", ")} or ${words[words.length - 1]}`;
}

/** The candidate closest to a mistyped word, when one is close enough to be meant. */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    // A prefix (`rerun-d`) is closest; among equal edits, one keeping the first letter wins
    // (`dsc`: desc, not asc).
    const w = word.toLowerCase();
    const l = c.toLowerCase();
    const d = w.length >= 3 && l.startsWith(w) ? 0.5 : distance(w, l) + (w[0] === l[0] ? 0 : 0.5);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.min(3, Math.floor(word.length / 3))) ? best : undefined;
}

/** Edit distance, a swap of two neighbours counting as one edit. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** `tideflow <cmd> --help`. */
export function commandHelp(spec: CommandSpec): string {
  const options = { ...spec.options, ...COMMON_OPTIONS };
  const rows = Object.entries(options).map(([name, o]) => {
    const left = `${o.short ? `-${o.short}, ` : ""}--${name}${o.type === "boolean" ? "" : ` ${o.value ?? "VALUE"}`}${o.multiple ? "..." : ""}`;
    return [left, o.help] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length));
  const runner =
    spec.runner === "none" ? "It needs no runner." : spec.runner === "reads" ? "It reads from the workspace's runner and never starts one." : "It starts the workspace's runner in the background when none is running.";
  return (
    `usage: tideflow ${spec.usage}\n\n${spec.summary}\n${runner}\n\noptions:\n` +
    rows.map(([l, h]) => `  ${l.padEnd(width)}  ${h}\n`).join("")
  );
}

/** What follows a usage error: the command's own usage line and where to read more. */
export function shortUsage(spec: CommandSpec | undefined): string {
  return spec ? `usage: tideflow ${spec.usage}\nsee \`tideflow ${spec.name} --help\`\n` : "see `tideflow --help`\n";
}
