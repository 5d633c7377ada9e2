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

/** `2026-11-20T02:30:00+08:00` for the instant in the zone. */
export function zonedIso(d: Date, timezone?: string): string {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: timezone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(d);
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? "00";
  const local = `${get("year")}-${get("month")}-${get("day")}T${get("hour")}:${get("minute")}:${get("second")}`;
  const asUtc = Date.parse(`${local}Z`);
  const offsetMin = Math.round((asUtc - Math.floor(d.getTime() / 1000) * 1000) / 60_000);
  const sign = offsetMin < 0 ? "-" : "+";
  const abs = Math.abs(offsetMin);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

export function previousDay(isoDate: string): string {
  const d = new Date(`${isoDate}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - 1);
  return d.toISOString().slice(0, 10);
}
