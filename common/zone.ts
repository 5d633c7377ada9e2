/**
 * Calendar dates and time zones: the one module that turns an instant into a zone's wall
 * clock and back. The engine's instance dates (`engine/dates.ts`), the cron helpers of the
 * hover and the pickers (`cron.ts`), the analyzer's zone check and the runner's log
 * timestamps all come here.
 *
 * A zone is an IANA name; `undefined` is the machine's zone. A wall-clock time is the
 * zone's clock reading as ms since the epoch read as UTC (`2026-11-20T02:30:00` in the
 * zone is `Date.UTC(2026, 10, 20, 2, 30)`). The zone's data comes from Intl only, through
 * one cached formatter per zone: building one costs ~0.1 ms, a reading (`formatToParts`)
 * a few µs.
 *
 * Planning a run reads the zone once: a `ZoneSpan` holds the zone's offsets over the
 * run's dates (read once a week, and at each transition found), and every instant, wall
 * time, start of day and cyctime of the run comes from it by arithmetic. (Before, each of
 * those asked Intl again: a 1-year hourly backfill read it ~800 times, twice per day.)
 */

export const DAY_MS = 86_400_000;

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Whether `text` is a real calendar date written `YYYY-MM-DD`. */
export function isCalendarDate(text: string): boolean {
  const m = DATE.exec(text);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = new Date(Date.UTC(y, mo - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d;
}

const MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

/**
 * Why `text`, written YYYY-MM-DD, is not a calendar date, in a user's words ("February
 * 2026 has 28 days"); undefined when it is one, or is not written YYYY-MM-DD at all.
 */
export function calendarDateProblem(text: string): string | undefined {
  const m = DATE.exec(text);
  if (!m || isCalendarDate(text)) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (mo < 1 || mo > 12) return `there is no month ${m[2]} (months are 01 to 12)`;
  const days = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  return d < 1 ? "days start at 01" : `${MONTH_NAMES[mo - 1]} ${y} has ${days} days`;
}

export function addDays(isoDate: string, days: number): string {
  return new Date(Date.parse(`${isoDate}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);
}

export function previousDay(isoDate: string): string {
  return addDays(isoDate, -1);
}

/** One formatter per zone ("": the machine's zone). Only zones that exist get one. */
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timezone: string | undefined): Intl.DateTimeFormat {
  const key = timezone ?? "";
  let f = formatters.get(key);
  if (!f) {
    // Throws a RangeError for a zone this runtime does not know.
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
  return f;
}

/** True when `zone` is an IANA zone name this runtime knows. */
export function isTimeZone(zone: string): boolean {
  // Offsets such as "+08:00" are accepted by Intl but are not IANA zones.
  if (!/^[A-Za-z][A-Za-z0-9_+\-]*(\/[A-Za-z0-9_+\-]+)*$/.test(zone)) return false;
  try {
    formatter(zone);
    return true;
  } catch {
    return false;
  }
}

/** The machine's zone's IANA name, as Intl resolves it. */
export function localZone(): string {
  return formatter(undefined).resolvedOptions().timeZone;
}

/** The zone's wall-clock time at instant `t` (ms, whole seconds: t's milliseconds dropped). */
export function wallClock(t: number, timezone: string | undefined): number {
  const p: Record<string, number> = {};
  for (const part of formatter(timezone).formatToParts(new Date(t))) if (part.type !== "literal") p[part.type] = Number(part.value);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
}

/** The zone's offset from UTC at instant `t`, in ms (whole seconds; t's milliseconds ignored). */
export function offsetAt(t: number, timezone: string | undefined): number {
  const whole = Math.floor(t / 1000) * 1000;
  return wallClock(whole, timezone) - whole;
}

/** The calendar date `YYYY-MM-DD` of an instant in the zone. */
export function zonedDate(t: number, timezone: string | undefined): string {
  return new Date(wallClock(t, timezone)).toISOString().slice(0, 10);
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

/**
 * The first instant whose date in the zone is `isoDate`: 00:00 there, or the end of the
 * DST gap on days where midnight does not exist (America/Santiago in September).
 */
export function startOfDay(isoDate: string, timezone: string | undefined): number {
  return zoneSpan(timezone, isoDate, isoDate).startOfDay(isoDate);
}

/**
 * The zone over every instant whose date there is in [firstDay, lastDay], and three days
 * either side: room for the ±14 h of any offset and for the two-day windows the engine's
 * dates put around each transition.
 */
export function zoneSpan(timezone: string | undefined, firstDay: string, lastDay: string): ZoneSpan {
  return new ZoneSpan(timezone, Date.parse(`${firstDay}T00:00:00Z`) - 3 * DAY_MS, Date.parse(`${lastDay}T00:00:00Z`) + 4 * DAY_MS);
}

/**
 * A zone's offsets from UTC over [start, end): constant stretches between the transitions,
 * found by reading the offset weekly and bisecting (to the second) where it differs, again
 * until the week is explained. Two transitions within one week whose effects cancel out
 * would be missed; no zone in the tz database has such a pair. Instants outside the span
 * are answered by the zone itself, so every answer is the zone's.
 */
export class ZoneSpan {
  /** Where each stretch begins, ascending: `start`, then each transition (whole seconds). */
  private readonly starts: number[] = [];
  /** The offset (ms) over each stretch. */
  private readonly offsets: number[] = [];

  constructor(
    readonly timezone: string | undefined,
    readonly start: number,
    readonly end: number,
  ) {
    const step = 7 * DAY_MS;
    let a = start;
    let offA = offsetAt(a, timezone);
    this.starts.push(a);
    this.offsets.push(offA);
    while (a < end) {
      const b = Math.min(a + step, end);
      const offB = offsetAt(b, timezone);
      // Each change within (a, b], until the offset at the last one is the offset at b.
      while (offB !== offA) {
        let lo = Math.floor(a / 1000); // offset offA
        let hi = Math.ceil(b / 1000); // offset differs
        while (hi - lo > 1) {
          const mid = Math.floor((lo + hi) / 2);
          if (offsetAt(mid * 1000, timezone) === offA) lo = mid;
          else hi = mid;
        }
        a = hi * 1000;
        offA = offsetAt(a, timezone);
        if (a < end) {
          this.starts.push(a);
          this.offsets.push(offA);
        }
      }
      a = b;
    }
  }

  /** Instants in [from, to) where the offset changes. */
  transitions(from: number, to: number): number[] {
    return this.starts.slice(1).filter((x) => x >= from && x < to);
  }

  /** The stretch holding `t` (start <= t < end). */
  private stretch(t: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= t) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The offset at instant `t`, in ms (t's milliseconds ignored, as by `offsetAt`). */
  offsetAt(t: number): number {
    if (t < this.start || t >= this.end) return offsetAt(t, this.timezone);
    return this.offsets[this.stretch(t)];
  }

  /** The wall-clock time at instant `t` (whole seconds, as by `wallClock`). */
  wallClock(t: number): number {
    return Math.floor(t / 1000) * 1000 + this.offsetAt(t);
  }

  /** `2026-11-20T02:30:00+08:00`: instant `t` in the zone. */
  iso(t: number): string {
    const offset = this.offsetAt(t);
    return isoWithOffset(Math.floor(t / 1000) * 1000 + offset, offset);
  }

  /** As `startOfDay`: the first instant whose wall-clock time is `isoDate`'s 00:00 or later. */
  startOfDay(isoDate: string): number {
    const midnight = Date.parse(`${isoDate}T00:00:00Z`);
    // Offsets are within ±14 h and gaps shorter than 4 h: the answer lies within 18 h of
    // the date's UTC midnight.
    const from = midnight - 18 * 3_600_000;
    const to = midnight + 18 * 3_600_000;
    if (from < this.start || to >= this.end) return zoneSpan(this.timezone, isoDate, isoDate).startOfDay(isoDate);
    for (let i = this.stretch(from); i < this.starts.length; i++) {
      // Within a stretch the wall clock runs with the instant: its first instant at or past
      // midnight is where midnight is, or the stretch's start when it began past midnight (a gap).
      const t = Math.max(this.starts[i], midnight - this.offsets[i]);
      if (t < (this.starts[i + 1] ?? this.end)) return t;
    }
    throw new Error(`no instant of ${isoDate} in ${this.timezone ?? "the machine's zone"}`); // unreachable: `to` is past midnight
  }
}
