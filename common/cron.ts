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
  try {
    CronExpressionParser.parse(expr, { tz: timezone, strict: false });
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
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
