/**
 * weekly_report: Monday 08:00 sales deck built from the week's daily_sales reports.
 *
 *   daily_sales.report ── collect_week ──┬── weekly_totals ── render_deck ──┐
 *                                        └── week_over_week ────────────────┴── send_email ── archive
 *
 * The Monday instance has bizdate = the Sunday before, and covers Monday..Sunday of that
 * week. Run daily_sales for those dates first (a backfill) to get real numbers; missing
 * days are reported as warnings, not failures.
 *
 * render_deck is SLOW ON PURPOSE (about 30 s, one log line a second): start a test run,
 * then kill render_deck while it runs (its whole process tree, `sleep` included, ends),
 * and rerun it; send_email and archive wait for it.
 *   tideflow test examples/weekly-report.flow.ts --date 2026-11-15 --detach
 *   tideflow kill <run> render_deck     tideflow rerun <run> render_deck
 */
import { workflow, task, shell } from "tideflow";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";

const DATA_DIR = process.env.TIDEFLOW_DATA_DIR ?? "/tmp/tideflow-examples";

const compact = (isoDate: string): string => isoDate.replaceAll("-", "");

/** `YYYY-MM-DD` plus `days` (may be negative), computed in UTC so no zone can shift it. */
function addDays(isoDate: string, days: number): string {
  const d = new Date(`${isoDate}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

interface DailyReport {
  bizdate: string;
  orders: number;
  revenue: number;
  currency: string;
}

interface Week {
  from: string;
  to: string;
  days: DailyReport[];
  missing: string[];
}

export const collect_week = task(
  "collect_week",
  {
    // A task of another workflow: examples/daily-sales.flow.ts.
    upstream: ["daily_sales.report"],
    timeout: "5m",
    retries: 1,
    retryDelay: "1m",
    description: "Gather the seven daily_sales reports of the week into week.json and week.csv.",
  },
  async (ctx) => {
    const from = addDays(ctx.bizdate, -6);
    const week: Week = { from, to: ctx.bizdate, days: [], missing: [] };
    for (let i = 0; i < 7; i++) {
      ctx.signal.throwIfAborted();
      const day = addDays(from, i);
      const file = join(DATA_DIR, "daily_sales", compact(day), "report.json");
      if (!existsSync(file)) {
        week.missing.push(day);
        continue;
      }
      const report = JSON.parse(await readFile(file, "utf8")) as DailyReport;
      week.days.push({ bizdate: day, orders: report.orders, revenue: report.revenue, currency: report.currency });
    }
    if (week.missing.length > 0) {
      ctx.log.warn(`no daily_sales report for ${week.missing.length} day(s): ${week.missing.join(", ")}`);
    }
    const dir = join(DATA_DIR, "weekly_report", compact(ctx.bizdate));
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "week.json"), JSON.stringify(week, null, 2) + "\n");
    // Revenue in cents keeps the shell arithmetic in weekly_totals integer-only.
    const csv = week.days.map((d) => `${d.bizdate},${d.orders},${Math.round(d.revenue * 100)}`);
    await writeFile(join(dir, "week.csv"), csv.length ? csv.join("\n") + "\n" : "");
    ctx.log.info(`week ${from} .. ${ctx.bizdate}: ${week.days.length} of 7 days found`);
  },
);

export const weekly_totals = shell(
  "weekly_totals",
  { upstream: [collect_week], timeout: "1m", description: "Sum orders and revenue over the week." },
  'set -euo pipefail; dir="${TIDEFLOW_DATA_DIR:-/tmp/tideflow-examples}/weekly_report/$BIZDATE"; \
    orders=0; cents=0; days=0; \
    while IFS=, read -r day o c; do orders=$(( orders + o )); cents=$(( cents + c )); days=$(( days + 1 )); done < "$dir/week.csv"; \
    printf "days=%d\\norders=%d\\nrevenue=%d.%02d\\n" "$days" "$orders" $(( cents / 100 )) $(( cents % 100 )) | tee "$dir/totals.txt"',
);

// Deliberately slow: PAGES slides at one a second, ~30 s. The one to kill and rerun.
export const render_deck = shell(
  "render_deck",
  {
    upstream: ["weekly_totals"],
    timeout: "2m",
    params: { PAGES: "30" },
    description: "Render the slide deck (slow on purpose: kill it and rerun it).",
  },
  'set -euo pipefail; dir="${TIDEFLOW_DATA_DIR:-/tmp/tideflow-examples}/weekly_report/$BIZDATE"; pages="${PARAM_PAGES:-30}"; \
    mkdir -p "$dir"; : > "$dir/deck.txt.partial"; \
    for i in $(seq 1 "$pages"); do echo "rendering slide $i/$pages"; echo "slide $i" >> "$dir/deck.txt.partial"; sleep 1; done; \
    if [ -f "$dir/totals.txt" ]; then cat "$dir/totals.txt" >> "$dir/deck.txt.partial"; \
    else echo "WARN no totals.txt for $BIZDATE_ISO (weekly_totals has not run): the deck has no totals page" >&2; fi; \
    mv "$dir/deck.txt.partial" "$dir/deck.txt"; \
    echo "deck ready: $(wc -l < "$dir/deck.txt") lines"',
);

export const week_over_week = task(
  "week_over_week",
  { upstream: [collect_week], timeout: "2m", description: "Revenue change against the previous week's report, if there is one." },
  async (ctx) => {
    const read = async (bizdate: string): Promise<Week | null> => {
      const file = join(DATA_DIR, "weekly_report", compact(bizdate), "week.json");
      return existsSync(file) ? (JSON.parse(await readFile(file, "utf8")) as Week) : null;
    };
    const revenue = (w: Week): number => w.days.reduce((sum, d) => sum + d.revenue, 0);
    const current = await read(ctx.bizdate);
    const previous = await read(addDays(ctx.bizdate, -7));
    if (current === null) throw new Error(`week.json for ${ctx.bizdate} is missing: did collect_week run?`);
    const change = previous && revenue(previous) > 0 ? (revenue(current) / revenue(previous) - 1) * 100 : null;
    const line = change === null ? "no previous week to compare with" : `${change >= 0 ? "+" : ""}${change.toFixed(1)}% week over week`;
    await writeFile(join(DATA_DIR, "weekly_report", compact(ctx.bizdate), "wow.txt"), line + "\n");
    ctx.log.info(line);
  },
);

export const send_email = task(
  "send_email",
  {
    upstream: ["render_deck", week_over_week],
    retries: 2,
    retryDelay: "30s",
    timeout: "1m",
    params: { RECIPIENTS: "sales-leads@example.com", SUBJECT_PREFIX: "[Weekly sales]" },
    description: "Write the e-mail to an outbox folder (a stand-in for SMTP).",
  },
  async (ctx) => {
    const dir = join(DATA_DIR, "weekly_report", compact(ctx.bizdate));
    const totals = await readFile(join(dir, "totals.txt"), "utf8");
    const wow = await readFile(join(dir, "wow.txt"), "utf8");
    const outbox = join(DATA_DIR, "outbox");
    await mkdir(outbox, { recursive: true });
    const file = join(outbox, `weekly_report_${compact(ctx.bizdate)}.eml`);
    const message = [
      `To: ${ctx.params.RECIPIENTS}`,
      `Subject: ${ctx.params.SUBJECT_PREFIX} week ending ${ctx.bizdate}`,
      `Date: ${new Date().toUTCString()}`,
      "",
      totals.trim(),
      wow.trim(),
      "",
      `Deck: ${join(dir, "deck.txt")}`,
    ].join("\r\n");
    await writeFile(file, message + "\r\n");
    ctx.log.info(`queued ${file} for ${ctx.params.RECIPIENTS}`);
  },
);

export const archive = shell(
  "archive",
  { upstream: ["send_email"], timeout: "1m", description: "Keep a copy of the week's outputs." },
  'set -euo pipefail; data="${TIDEFLOW_DATA_DIR:-/tmp/tideflow-examples}"; \
    mkdir -p "$data/archive/weekly_report"; cp -r "$data/weekly_report/$BIZDATE" "$data/archive/weekly_report/"; \
    echo "archived $(ls "$data/archive/weekly_report/$BIZDATE" | wc -l) files for week ending $BIZDATE_ISO"',
);

export default workflow("weekly_report", {
  description: "Monday sales deck from the week's daily_sales reports.",
  schedule: "0 8 * * 1",
  timezone: "Asia/Shanghai",
  concurrency: 2,
  tasks: [collect_week, weekly_totals, render_deck, week_over_week, send_email, archive],
});
