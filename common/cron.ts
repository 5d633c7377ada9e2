import { CronExpressionParser } from "cron-parser";
import cronstrue from "cronstrue";

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

/** True when `zone` is an IANA zone name this runtime knows. */
export function isTimeZone(zone: string): boolean {
  // Offsets such as "+08:00" are accepted by Intl but are not IANA zones.
  if (!/^[A-Za-z][A-Za-z0-9_+\-]*(\/[A-Za-z0-9_+\-]+)*$/.test(zone)) return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
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

/** One formatter per zone (undefined: the machine's zone): building one costs ~0.1 ms. */
const formatters = new Map<string, Intl.DateTimeFormat>();

/** The zone's wall-clock time at instant `t`, read as if it were UTC (ms, whole seconds). */
export function wallClock(t: number, timezone: string | undefined): number {
  const key = timezone ?? "";
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: timezone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    formatters.set(key, f);
  }
  const p: Record<string, number> = {};
  for (const part of f.formatToParts(new Date(t))) if (part.type !== "literal") p[part.type] = Number(part.value);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
}

/** `2026-11-20T02:30:00+08:00` from a wall-clock time and the zone's offset then. */
export function isoWithOffset(wall: number, offsetMs: number): string {
  const offsetMin = Math.round(offsetMs / 60_000);
  const abs = Math.abs(offsetMin);
  const sign = offsetMin < 0 ? "-" : "+";
  return `${new Date(wall).toISOString().slice(0, 19)}${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

/** `2026-11-20T02:30:00+08:00` for the instant in the zone. */
export function zonedIso(d: Date, timezone?: string): string {
  const whole = Math.floor(d.getTime() / 1000) * 1000;
  const wall = wallClock(whole, timezone);
  return isoWithOffset(wall, wall - whole);
}

export function previousDay(isoDate: string): string {
  const d = new Date(`${isoDate}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - 1);
  return d.toISOString().slice(0, 10);
}
