/**
 * common/zone.ts: a `ZoneSpan` answers as the zone itself does (offsets, wall clock, start
 * of day) from the readings it took once, and planning a run reads the zone that once
 * rather than per day of the range.
 *
 * Run: `node --import tsx --test test/unit/zone.test.ts`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { instanceTimes, testInstanceTime } from "../../common/engine/dates";
import { addDays, offsetAt, wallClock, zonedDate, zoneSpan } from "../../common/zone";

const HOUR = 3_600_000;

/** The first second whose date in the zone is `isoDate`, by bisection on the zone itself. */
function firstSecondOf(isoDate: string, tz: string): number {
  const midnight = Date.parse(`${isoDate}T00:00:00Z`);
  let lo = (midnight - 18 * HOUR) / 1000;
  let hi = (midnight + 18 * HOUR) / 1000;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (zonedDate(mid * 1000, tz) >= isoDate) hi = mid;
    else lo = mid;
  }
  return hi * 1000;
}

test("a ZoneSpan's offsets, wall clock and starts of days are the zone's", () => {
  // DST both ways, a midnight that does not exist (Santiago, September), half-hour DST
  // (Lord Howe), a 45-minute offset, a zone that skipped a whole day (Apia, 2011-12-30).
  const zones = ["Europe/Berlin", "America/New_York", "America/Santiago", "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Apia", "UTC"];
  for (const tz of zones) {
    for (const [first, last] of [["2011-12-20", "2012-01-10"], ["2025-12-15", "2026-12-31"]]) {
      const span = zoneSpan(tz, first, last);
      for (let t = span.start + 1234; t < span.end; t += 7 * HOUR + 13_000) {
        assert.equal(span.offsetAt(t), offsetAt(t, tz), `${tz} offset at ${new Date(t).toISOString()}`);
        assert.equal(span.wallClock(t), wallClock(t, tz), `${tz} wall clock at ${new Date(t).toISOString()}`);
      }
      // (Apia's 2011-12-30 starts where 12-31 does: its first instant of that date or later.)
      for (let day = first; day <= last; day = addDays(day, 1)) {
        assert.equal(span.startOfDay(day), firstSecondOf(day, tz), `${tz} start of ${day}`);
      }
    }
  }
});

test("planning reads the zone once per run, not per day", () => {
  const proto = Intl.DateTimeFormat.prototype;
  const formatToParts = proto.formatToParts;
  let readings = 0;
  proto.formatToParts = function (this: Intl.DateTimeFormat, date?: Date | number) {
    readings++;
    return formatToParts.call(this, date);
  };
  try {
    // No DST in Shanghai: cron-parser's own zone handling never runs, every reading is the span's.
    assert.equal(instanceTimes("0 * * * *", "Asia/Shanghai", "2025-01-01", "2025-12-31").length, 8760);
    // Weekly readings over the year and its margins (was 818: twice per day of the range).
    assert.ok(readings < 100, `a 1-year hourly plan read the zone ${readings} times`);
    readings = 0;
    testInstanceTime("30 2 * * *", "Asia/Shanghai", "2025-06-01");
    assert.ok(readings < 5, `a test instance read the zone ${readings} times`);
  } finally {
    proto.formatToParts = formatToParts;
  }
});
