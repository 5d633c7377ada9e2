/**
 * Cron expressions as the analyzer, the hover and the extension's pickers use them: is one
 * valid, what does it say, when does it fire next or last. Zone conversions are
 * `zone.ts`'s; the engine's instance dates are `engine/dates.ts`.
 */
import { CronExpressionParser } from "cron-parser";
import cronstrue from "cronstrue";
import { previousDay, wallClock, zonedIso } from "./zone";

/** Undefined when the expression is valid in that zone; otherwise why it is not. */
export function checkCron(expr: string, timezone?: string): string | undefined {
  const fields = expr.trim().split(/\s+/).filter(Boolean);
  if (fields.length !== 5 && fields.length !== 6) {
    return `expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), got ${fields.length}`;
  }
  const wrong = fieldProblem(fields);
  if (wrong) return wrong;
  try {
    CronExpressionParser.parse(expr, { tz: timezone, strict: false });
    return undefined;
  } catch (e) {
    // What fieldProblem does not foresee, in cron-parser's words, tidied.
    return (e instanceof Error ? e.message : String(e)).replace(/^(Constraint|Validation) error, /, "").replace(/\.+$/, "");
  }
}

interface CronField {
  name: string;
  /** Plural, for "minutes go from 0 to 59". */
  plural: string;
  min: number;
  max: number;
  aliases?: readonly string[];
  /** Characters cron-parser also takes in this field (L, W, #, ?). */
  extra: RegExp;
}

const SECOND: CronField = { name: "second", plural: "seconds", min: 0, max: 59, extra: /$^/ };
const FIVE_FIELDS: readonly CronField[] = [
  { name: "minute", plural: "minutes", min: 0, max: 59, extra: /$^/ },
  { name: "hour", plural: "hours", min: 0, max: 23, extra: /$^/ },
  { name: "day-of-month", plural: "days of the month", min: 1, max: 31, extra: /[L?]/i },
  { name: "month", plural: "months", min: 1, max: 12, aliases: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], extra: /$^/ },
  { name: "day-of-week", plural: "days of the week", min: 0, max: 7, aliases: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"], extra: /[L#?]/i },
];

/**
 * The first field value a person would get wrong — out of range, an unknown name, a
 * range that runs backwards, a step of 0 — said in their words: "the hour field has 25;
 * hours go from 0 to 23". Undefined when nothing is found (cron-parser then decides).
 */
function fieldProblem(fields: string[]): string | undefined {
  const specs = fields.length === 6 ? [SECOND, ...FIVE_FIELDS] : FIVE_FIELDS;
  for (let i = 0; i < fields.length; i++) {
    const spec = specs[i];
    for (const part of fields[i].split(",")) {
      if (spec.extra.test(part)) continue; // L, W, #, ?: cron-parser's to judge
      const [range, step, more] = part.split("/");
      if (more !== undefined) return `the ${spec.name} field has \`${part}\`: one step (\`/N\`) at most`;
      if (step !== undefined && !(/^\d+$/.test(step) && Number(step) > 0)) {
        return `the ${spec.name} field has \`${part}\`: a step (\`/N\`) is a whole number from 1`;
      }
      if (range === "*") continue;
      const ends = range.split("-");
      if (ends.length > 2 || ends.some((e) => e === "")) return `the ${spec.name} field has \`${part}\`, which is not a value, a range (a-b) or *`;
      const values: number[] = [];
      for (const end of ends) {
        let v: number;
        if (/^\d+$/.test(end)) v = Number(end);
        else {
          const alias = spec.aliases?.indexOf(end.toLowerCase()) ?? -1;
          if (alias === -1) {
            const names = spec.aliases ? ` or ${spec.aliases[0].toUpperCase()}-${spec.aliases[spec.aliases.length - 1].toUpperCase()}` : "";
            return `the ${spec.name} field has \`${end}\`; ${spec.plural} are ${spec.min}-${spec.max}${names}`;
          }
          v = alias + (spec.name === "month" ? 1 : 0);
        }
        if (v < spec.min || v > spec.max) return `the ${spec.name} field has ${end}; ${spec.plural} go from ${spec.min} to ${spec.max}`;
        values.push(v);
      }
      if (values.length === 2 && values[0] > values[1]) return `the ${spec.name} field has the range ${range}, which runs backwards (write ${ends[1]}-${ends[0]}, or a list)`;
    }
  }
  return undefined;
}

export function describeCron(expr: string): string {
  try {
    return cronstrue.toString(expr, { use24HourTimeFormat: true, verbose: false });
  } catch (e) {
    return `(${e instanceof Error ? e.message : String(e)})`;
  }
}

export interface FireTime {
  /** ISO 8601 with the zone's offset. */
  cyctime: string;
  /** The fire time's calendar date in the zone, minus one day. */
  bizdate: string;
}

export function nextFireTimes(expr: string, timezone: string | undefined, count: number, from = new Date()): FireTime[] {
  const it = CronExpressionParser.parse(expr, { tz: timezone, currentDate: from });
  const out: FireTime[] = [];
  for (let i = 0; i < count; i++) {
    const zoned = zonedIso(it.next().toDate(), timezone);
    out.push({ cyctime: zoned, bizdate: previousDay(zoned.slice(0, 10)) });
  }
  return out;
}

/**
 * The bizdates of the schedule's `count` latest fire times at or before `now`, newest
 * first, one per bizdate (an hourly schedule's 24 fires of a day are one bizdate). After a
 * fire, the search jumps to the start of that fire's day, so it costs about one step per
 * bizdate whatever the schedule's rate.
 */
export function recentBizdates(expr: string, timezone: string | undefined, count: number, now = new Date()): FireTime[] {
  const out: FireTime[] = [];
  let from = now.getTime() + 1;
  for (let guard = 0; out.length < count && guard < count * 3; guard++) {
    const it = CronExpressionParser.parse(expr, { tz: timezone, currentDate: new Date(from) });
    let fire: Date;
    try {
      fire = it.prev().toDate();
    } catch {
      break; // no earlier fire time
    }
    const zoned = zonedIso(fire, timezone);
    const bizdate = previousDay(zoned.slice(0, 10));
    if (out[out.length - 1]?.bizdate !== bizdate) out.push({ cyctime: zoned, bizdate });
    const t = fire.getTime();
    from = t - (wallClock(t, timezone) % 86_400_000);
  }
  return out;
}
