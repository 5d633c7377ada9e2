/**
 * What each API request's params must look like, checked in one place before any handler
 * runs: a handler sees only params that fit `ApiMethods` (protocol/api.ts). A request that
 * does not fit is answered `invalid-params` with a sentence saying what was expected and
 * what came: ``runs.create expects `tasks` to be an array of task ids, got a string (`"a"`)``.
 *
 * Only shapes are checked here; whether the values make sense for the workspace (the file
 * exists, the task is in the workflow, the range has instances) is the daemon's and the
 * engine's to say, with their own codes.
 */
import type { ApiMethod, ApiMethods, TaskOperation } from "../protocol/api";
import { OPERATIONS } from "../protocol/operations";
import { TASK_STATES, type RunState } from "../protocol/runner";
import { calendarDateProblem, isCalendarDate } from "../common/zone";

/** How to check one value: undefined when it fits, else what is wrong, completing "<method> …". */
type Check = (value: unknown, name: string) => string | undefined;

interface Param {
  check: Check;
  required: boolean;
}

/** One entry per member of the params type, so that a new member cannot go unchecked. */
type Shape<P> = { [K in keyof Required<P>]: Param };

export const MAX_PAGE = 1000;

const RUN_STATES: readonly RunState[] = ["running", "success", "failed", "killed", "paused"];
const OPERATION_NAMES: readonly TaskOperation[] = OPERATIONS.map((o) => o.op);

function value(expected: string, test: (v: unknown) => boolean): Check {
  return (v, name) => (test(v) ? undefined : `expects \`${name}\` to be ${expected}, got ${shown(v)}`);
}

function oneOf(values: readonly string[]): Check {
  return value(orList(values), (v) => typeof v === "string" && values.includes(v));
}

function integer(min: number, max = Number.MAX_SAFE_INTEGER): Check {
  const expected = max === Number.MAX_SAFE_INTEGER ? `an integer from ${min} and up` : `an integer from ${min} to ${max}`;
  return value(expected, (v) => Number.isInteger(v) && (v as number) >= min && (v as number) <= max);
}

const text = (expected: string) => value(expected, (v) => typeof v === "string" && v !== "");
const boolean = value("a boolean", (v) => typeof v === "boolean");
const taskIds = value("an array of task ids", (v) => Array.isArray(v) && v.every((t) => typeof t === "string" && t !== ""));
const date: Check = (v, name) => {
  const problem = typeof v === "string" ? calendarDateProblem(v) : undefined;
  if (problem !== undefined) return `got \`${name}\` ${v}, which is not a calendar date: ${problem}`;
  return value("a calendar date written YYYY-MM-DD", (x) => typeof x === "string" && isCalendarDate(x))(v, name);
};

const required = (check: Check): Param => ({ check, required: true });
const optional = (check: Check): Param => ({ check, required: false });

/** A plain object with exactly the shape's members (the required ones present). */
function object(shape: Record<string, Param>): Check {
  const names = Object.keys(shape);
  return (v, name) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      return `expects \`${name}\` to be an object${names.length > 0 ? ` with ${names.map((n) => `\`${n}\``).join(", ")}` : ""}, got ${shown(v)}`;
    }
    for (const key of Object.keys(v)) {
      if (!Object.hasOwn(shape, key)) {
        return `takes no \`${key}\`${name === "params" ? "" : ` in \`${name}\``}; ${names.length > 0 ? `it takes ${names.map((n) => `\`${n}\``).join(", ")}` : "it takes no params"}`;
      }
    }
    for (const [key, param] of Object.entries(shape)) {
      const member = (v as Record<string, unknown>)[key];
      const path = name === "params" ? key : `${name}.${key}`;
      if (member === undefined) {
        if (param.required) return param.check(undefined, path);
        continue;
      }
      const problem = param.check(member, path);
      if (problem) return problem;
    }
    return undefined;
  };
}

const run = required(text("a run id (run-3, 3 or last)"));
const by = optional(text("who asks, such as cli or vscode"));
const dateOrInstance = optional(text("a bizdate (YYYY-MM-DD), a cyctime or an instance id"));

const createRun: Shape<ApiMethods["runs.create"]["params"]> = {
  kind: required(oneOf(["test", "backfill"])),
  file: required(text("the workflow file's path")),
  tasks: optional(taskIds),
  downstream: optional(boolean),
  bizdate: optional(date),
  from: optional(date),
  to: optional(date),
  parallelism: optional(integer(1)),
  order: optional(oneOf(["asc", "desc"])),
  by,
};

const SHAPES: { [M in ApiMethod]: Shape<ApiMethods[M]["params"]> } = {
  "runner.status": {},
  "runner.stop": {},
  "runs.list": { state: optional(oneOf(RUN_STATES)) },
  "runs.get": { run, instances: optional(boolean) },
  "runs.instances": {
    run,
    offset: optional(integer(0)),
    limit: optional(integer(1, MAX_PAGE)),
    state: optional(oneOf(TASK_STATES)),
  },
  "runs.create": createRun,
  "runs.plan": createRun,
  "task.operate": { run, task: optional(text("a task id")), date: dateOrInstance, op: required(oneOf(OPERATION_NAMES)), by },
  "task.rerunDownstream": { run, task: required(text("a task id")), date: dateOrInstance, only: optional(taskIds), by },
  "logs.read": {
    run,
    task: required(text("a task id")),
    date: dateOrInstance,
    attempt: optional(integer(1)),
    offset: optional(integer(0)),
  },
  subscribe: {
    records: optional(boolean),
    logs: optional(
      object({
        instanceId: required(text("a workflow instance id")),
        task: required(text("a task id")),
        attempt: optional(integer(1)),
      }),
    ),
  },
  unsubscribe: { subscription: required(integer(1)) },
};

const CHECKS = Object.fromEntries(Object.entries(SHAPES).map(([method, shape]) => [method, object(shape as Record<string, Param>)])) as Record<
  ApiMethod,
  Check
>;

export const API_METHODS = Object.keys(SHAPES) as ApiMethod[];

export function isApiMethod(method: unknown): method is ApiMethod {
  return typeof method === "string" && Object.hasOwn(SHAPES, method);
}

/** Why `params` does not fit `method` (a sentence starting with the method), or undefined when it does. */
export function paramsProblem(method: ApiMethod, params: unknown): string | undefined {
  const problem = CHECKS[method](params, "params");
  return problem && `${method} ${problem}`;
}

/** What came, for a person: ``a string (`"a,b"`)``, ``a number (`0`)``, `nothing`. */
export function shown(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "`null`";
  if (Array.isArray(v)) return `an array (\`${clip(JSON.stringify(v))}\`)`;
  if (typeof v === "object") return "an object";
  const kind = typeof v === "string" ? "a string" : typeof v === "number" ? "a number" : typeof v === "boolean" ? "a boolean" : typeof v;
  return `${kind} (\`${clip(JSON.stringify(v) ?? String(v))}\`)`;
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
}

/** "asc or desc", "test or backfill", "kill, rerun, … or resume" */
function orList(values: readonly string[]): string {
  return values.length === 1 ? values[0] : `${values.slice(0, -1).join(", ")} or ${values[values.length - 1]}`;
}
