/**
 * hourly_events: clickstream roll-up, once an hour for the hour that just ended.
 *
 *   collect_events ──┬── sessionize ───────────────────────┐
 *                    └── count_by_type ── detect_anomalies ─┴── publish_summary
 *
 * An hourly schedule makes 24 instances per bizdate in a backfill:
 *   tideflow backfill examples/hourly-events.flow.ts --from 2026-11-19 --to 2026-11-19 --parallel 4
 * Each instance works on the hour before its cyctime, in
 * $TIDEFLOW_DATA_DIR (default /tmp/tideflow-examples)/hourly_events/<YYYY-MM-DDTHH of cyctime>/.
 */
import { workflow, task, shell } from "tideflow";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

const DATA_DIR = process.env.TIDEFLOW_DATA_DIR ?? "/tmp/tideflow-examples";

/** "2026-11-20T03": the same key the shell tasks get from ${CYCTIME:0:13}. */
function hourDir(cyctime: string): string {
  return join(DATA_DIR, "hourly_events", cyctime.slice(0, 13));
}

function seeded(seed: string): () => number {
  let h = 2166136261;
  for (const ch of seed) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  return () => {
    h = (h + 0x6d2b79f5) | 0;
    let t = Math.imul(h ^ (h >>> 15), 1 | h);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const EVENT_TYPES = ["page_view", "page_view", "page_view", "click", "click", "search", "add_to_cart", "checkout", "error"];

export const collect_events = task(
  "collect_events",
  {
    description: "Read the hour's events from the (simulated) collector into events.csv, sorted by time.",
    retries: 2,
    retryDelay: "15s",
    timeout: "5m",
    params: { EVENTS_PER_HOUR: "5000", USERS: "400" },
  },
  async (ctx) => {
    const total = Number.parseInt(ctx.params.EVENTS_PER_HOUR ?? "5000", 10);
    const users = Number.parseInt(ctx.params.USERS ?? "400", 10);
    const end = new Date(ctx.cyctime).getTime();
    const start = end - 3_600_000;
    const random = seeded(ctx.cyctime);
    const events: [number, string, string][] = [];
    for (let i = 0; i < total; i++) {
      if (i % 1000 === 0) ctx.signal.throwIfAborted();
      const at = start + Math.floor(random() * 3_600_000);
      const user = `u${String(1 + Math.floor(random() * users)).padStart(4, "0")}`;
      events.push([at, user, EVENT_TYPES[Math.floor(random() * EVENT_TYPES.length)]]);
    }
    events.sort((a, b) => a[0] - b[0]);
    const dir = hourDir(ctx.cyctime);
    await mkdir(dir, { recursive: true });
    const csv = ["ts,user_id,event_type", ...events.map(([at, user, type]) => `${new Date(at).toISOString()},${user},${type}`)];
    await writeFile(join(dir, "events.csv"), csv.join("\n") + "\n");
    ctx.log.info(`collected ${total} events from ${new Date(start).toISOString()} to ${new Date(end).toISOString()}`);
  },
);

export const count_by_type = shell(
  "count_by_type",
  { upstream: [collect_events], timeout: "1m", description: "Events per type for the hour." },
  'set -euo pipefail; dir="${TIDEFLOW_DATA_DIR:-/tmp/tideflow-examples}/hourly_events/${CYCTIME:0:13}"; \
    tail -n +2 "$dir/events.csv" | cut -d, -f3 | sort | uniq -c | sort -rn > "$dir/counts.txt"; \
    echo "event counts for the hour before $CYCTIME:"; cat "$dir/counts.txt"',
);

export const sessionize = task(
  "sessionize",
  {
    upstream: [collect_events],
    timeout: "5m",
    params: { SESSION_GAP_MINUTES: "5" },
    description: "Split each user's events into sessions at gaps longer than SESSION_GAP_MINUTES.",
  },
  async (ctx) => {
    const gapMs = Number.parseInt(ctx.params.SESSION_GAP_MINUTES ?? "5", 10) * 60_000;
    const dir = hourDir(ctx.cyctime);
    const lines = (await readFile(join(dir, "events.csv"), "utf8")).trim().split("\n").slice(1);
    const lastSeen = new Map<string, number>();
    const sessions: { user: string; start: number; end: number; events: number }[] = [];
    const open = new Map<string, (typeof sessions)[number]>();
    for (const line of lines) {
      const [ts, user] = line.split(",");
      const at = Date.parse(ts);
      const previous = lastSeen.get(user);
      let session = open.get(user);
      if (session === undefined || previous === undefined || at - previous > gapMs) {
        session = { user, start: at, end: at, events: 0 };
        sessions.push(session);
        open.set(user, session);
      }
      session.end = at;
      session.events++;
      lastSeen.set(user, at);
    }
    const avgMinutes = sessions.reduce((sum, s) => sum + (s.end - s.start), 0) / Math.max(sessions.length, 1) / 60_000;
    await writeFile(join(dir, "sessions.json"), JSON.stringify({ sessions: sessions.length, users: open.size, avgMinutes: Number(avgMinutes.toFixed(2)) }) + "\n");
    ctx.log.info(`${sessions.length} sessions from ${open.size} users, average ${avgMinutes.toFixed(1)} min`);
  },
);

export const detect_anomalies = task(
  "detect_anomalies",
  {
    upstream: ["count_by_type"],
    timeout: "2m",
    params: { MAX_ERROR_RATE: "0.15" },
    description: "Warn when the share of error events is above MAX_ERROR_RATE (it warns, it does not fail).",
  },
  async (ctx) => {
    const counts = new Map<string, number>();
    for (const line of (await readFile(join(hourDir(ctx.cyctime), "counts.txt"), "utf8")).trim().split("\n")) {
      const [n, type] = line.trim().split(/\s+/);
      counts.set(type, Number(n));
    }
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    const rate = (counts.get("error") ?? 0) / Math.max(total, 1);
    const max = Number(ctx.params.MAX_ERROR_RATE ?? "0.15");
    if (rate > max) ctx.log.warn(`error rate ${(rate * 100).toFixed(1)}% is above ${(max * 100).toFixed(1)}%`);
    else ctx.log.info(`error rate ${(rate * 100).toFixed(1)}% (limit ${(max * 100).toFixed(1)}%)`);
    const funnel = (counts.get("checkout") ?? 0) / Math.max(counts.get("add_to_cart") ?? 0, 1);
    ctx.log.info(`checkout / add_to_cart: ${funnel.toFixed(2)}`);
  },
);

export const publish_summary = shell(
  "publish_summary",
  { upstream: [sessionize, detect_anomalies], timeout: "1m", description: "One TSV line per hour for the dashboard." },
  'set -euo pipefail; dir="${TIDEFLOW_DATA_DIR:-/tmp/tideflow-examples}/hourly_events/${CYCTIME:0:13}"; \
    events=$(( $(wc -l < "$dir/events.csv") - 1 )); \
    printf "%s\\t%s\\t%d\\t%s\\n" "$CYCTIME" "$BIZDATE" "$events" "$(cat "$dir/sessions.json")" > "$dir/summary.tsv"; \
    cat "$dir/summary.tsv"',
);

export default workflow("hourly_events", {
  description: "Hourly clickstream roll-up.",
  schedule: "0 * * * *",
  timezone: "UTC",
  concurrency: 2,
  tasks: [collect_events, count_by_type, sessionize, detect_anomalies, publish_summary],
});
