/**
 * daily_sales: the nightly sales mart, the usual first pipeline of a data warehouse.
 *
 *   extract_orders ──┬── sales_by_region ──┐
 *                    └── sales_by_product ─┴── quality_check ──┐
 *                                   crm.sync_accounts ─────────┴── report ── publish
 *
 * Runs at 02:30 Shanghai time for business date "yesterday" (DataWorks-style bizdate).
 * Nothing here needs a database: the "order API" is simulated and every file is written
 * under $TIDEFLOW_DATA_DIR (default /tmp/tideflow-examples)/daily_sales/<BIZDATE>/.
 *
 * Try it:
 *   tideflow test examples/daily-sales.flow.ts --date 2026-11-19
 *   tideflow backfill examples/daily-sales.flow.ts --from 2026-11-01 --to 2026-11-07 --parallel 2
 *
 * quality_check FAILS ON PURPOSE when its param FAIL is "1" (it then sees PARAM_FAIL=1):
 * set it below, run a test, watch the retry, then set it back to "0" and rerun the task,
 * or "set success" on it so that report and publish carry on.
 */
import { workflow, task, shell } from "tideflow";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const DATA_DIR = process.env.TIDEFLOW_DATA_DIR ?? "/tmp/tideflow-examples";

/** Same folder the shell tasks use: $DATA/daily_sales/$BIZDATE (BIZDATE=20261119). */
function partition(workflowId: string, bizdate: string): string {
  return join(DATA_DIR, workflowId, bizdate.replaceAll("-", ""));
}

/** A small deterministic PRNG, so one bizdate always extracts the same orders. */
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

const REGIONS = ["east", "north", "south", "west", "central"];
const PRODUCTS = ["tea", "coffee", "juice", "water", "snacks", "noodles", "rice"];

export const extract_orders = task(
  "extract_orders",
  {
    description: "Pull the business date's orders from the (simulated) order API into orders_<BIZDATE>.csv.",
    retries: 2,
    retryDelay: "30s",
    timeout: "10m",
    params: { SOURCE: "orders_api", ROWS: "2000", PAGE_SIZE: "500" },
  },
  async (ctx) => {
    const rows = Number.parseInt(ctx.params.ROWS ?? "2000", 10);
    const pageSize = Number.parseInt(ctx.params.PAGE_SIZE ?? "500", 10);
    const dir = partition("daily_sales", ctx.bizdate);
    const file = join(dir, `orders_${ctx.bizdate.replaceAll("-", "")}.csv`);
    ctx.log.info(`extracting ${rows} orders for ${ctx.bizdate} from ${ctx.params.SOURCE} (attempt ${ctx.attempt})`);

    const random = seeded(ctx.bizdate);
    const lines = ["order_id,region,product,quantity,amount_cents"];
    for (let i = 0; i < rows; i++) {
      if (i % pageSize === 0) {
        // One "API page": a short pause that a kill or a timeout interrupts at once.
        ctx.log.debug(`fetching page ${i / pageSize + 1}`);
        await sleep(200, undefined, { signal: ctx.signal });
      }
      const region = REGIONS[Math.floor(random() * REGIONS.length)];
      const product = PRODUCTS[Math.floor(random() * PRODUCTS.length)];
      const quantity = 1 + Math.floor(random() * 5);
      const amount = quantity * (300 + Math.floor(random() * 2700));
      lines.push(`${ctx.bizdate.replaceAll("-", "")}-${String(i + 1).padStart(6, "0")},${region},${product},${quantity},${amount}`);
    }

    await mkdir(dir, { recursive: true });
    await writeFile(file, lines.join("\n") + "\n");
    ctx.log.info(`wrote ${rows} rows to ${file}`);
  },
);

// A shell command is one string literal (the analyzer reads literals only: no `+`, no
// template literal); a backslash at the end of a line continues the string. The shell sees
// BIZDATE=20261119, BIZDATE_ISO, CYCTIME, TIDEFLOW_ATTEMPT and PARAM_<NAME> per param.
export const sales_by_region = shell(
  "sales_by_region",
  { upstream: [extract_orders], timeout: "2m", description: "Order count per region." },
  'set -euo pipefail; dir="${TIDEFLOW_DATA_DIR:-/tmp/tideflow-examples}/daily_sales/$BIZDATE"; \
    tail -n +2 "$dir/orders_$BIZDATE.csv" | cut -d, -f2 | sort | uniq -c | sort -rn > "$dir/orders_by_region.txt"; \
    echo "orders by region for $BIZDATE_ISO:"; cat "$dir/orders_by_region.txt"',
);

export const sales_by_product = shell(
  "sales_by_product",
  { upstream: [extract_orders], timeout: "2m", description: "Order count per product." },
  'set -euo pipefail; dir="${TIDEFLOW_DATA_DIR:-/tmp/tideflow-examples}/daily_sales/$BIZDATE"; \
    tail -n +2 "$dir/orders_$BIZDATE.csv" | cut -d, -f3 | sort | uniq -c | sort -rn > "$dir/orders_by_product.txt"; \
    echo "top products for $BIZDATE_ISO:"; head -n 3 "$dir/orders_by_product.txt"',
);

// Fails on purpose when params.FAIL is "1" (the shell sees PARAM_FAIL=1): exit code 3, then
// one retry after 5s, which fails again. Set FAIL back to "0" and rerun, or set success.
export const quality_check = shell(
  "quality_check",
  {
    upstream: ["sales_by_region", "sales_by_product"],
    retries: 1,
    retryDelay: "5s",
    timeout: "1m",
    params: { MIN_ROWS: "100", FAIL: "0" },
    description: "Row-count gate: both aggregates must add up to the extracted rows.",
  },
  'set -euo pipefail; dir="${TIDEFLOW_DATA_DIR:-/tmp/tideflow-examples}/daily_sales/$BIZDATE"; \
    if [ "${PARAM_FAIL:-0}" = "1" ]; then echo "PARAM_FAIL=1: failing on purpose (attempt $TIDEFLOW_ATTEMPT)" >&2; exit 3; fi; \
    rows=$(( $(wc -l < "$dir/orders_$BIZDATE.csv") - 1 )); \
    by_region=0; while read -r n _; do by_region=$(( by_region + n )); done < "$dir/orders_by_region.txt"; \
    by_product=0; while read -r n _; do by_product=$(( by_product + n )); done < "$dir/orders_by_product.txt"; \
    printf "rows=%d by_region=%d by_product=%d min=%d\\n" "$rows" "$by_region" "$by_product" "${PARAM_MIN_ROWS:-100}"; \
    if [ "$rows" -lt "${PARAM_MIN_ROWS:-100}" ]; then echo "too few rows: $rows" >&2; exit 1; fi; \
    if [ "$rows" -ne "$by_region" ] || [ "$rows" -ne "$by_product" ]; then echo "aggregates do not add up" >&2; exit 2; fi; \
    echo "quality check passed"',
);

export const report = task(
  "report",
  {
    // A task of this workflow, and one of the crm workflow (examples/crm.flow.ts).
    upstream: ["quality_check", "crm.sync_accounts"],
    timeout: "5m",
    params: { TOP_N: "3" },
    description: "Revenue per region and the top products, joined with the CRM account count.",
  },
  async (ctx) => {
    const dir = partition("daily_sales", ctx.bizdate);
    const csv = await readFile(join(dir, `orders_${ctx.bizdate.replaceAll("-", "")}.csv`), "utf8");
    const revenueByRegion = new Map<string, number>();
    const revenueByProduct = new Map<string, number>();
    let orders = 0;
    let revenue = 0;
    for (const line of csv.trim().split("\n").slice(1)) {
      ctx.signal.throwIfAborted();
      const [, region, product, , cents] = line.split(",");
      const amount = Number(cents);
      orders++;
      revenue += amount;
      revenueByRegion.set(region, (revenueByRegion.get(region) ?? 0) + amount);
      revenueByProduct.set(product, (revenueByProduct.get(product) ?? 0) + amount);
    }

    // The CRM workflow may not have run for this date (an upstream outside a test run's
    // selection counts as satisfied), so a missing file is a warning, not a failure.
    const accountsFile = join(partition("crm", ctx.bizdate), "accounts.csv");
    let activeAccounts: number | null = null;
    if (existsSync(accountsFile)) {
      activeAccounts = (await readFile(accountsFile, "utf8")).trim().split("\n").filter(Boolean).length;
    } else {
      ctx.log.warn(`no CRM snapshot at ${accountsFile}; report goes out without account counts`);
    }

    const topN = Number.parseInt(ctx.params.TOP_N ?? "3", 10);
    const currency = ctx.params.CURRENCY ?? "CNY";
    const result = {
      bizdate: ctx.bizdate,
      cyctime: ctx.cyctime,
      currency,
      orders,
      revenue: revenue / 100,
      averageOrder: orders ? Math.round(revenue / orders) / 100 : 0,
      activeAccounts,
      byRegion: Object.fromEntries([...revenueByRegion].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v / 100])),
      topProducts: [...revenueByProduct].sort((a, b) => b[1] - a[1]).slice(0, topN).map(([k]) => k),
    };
    await writeFile(join(dir, "report.json"), JSON.stringify(result, null, 2) + "\n");
    ctx.log.info(`${orders} orders, revenue ${result.revenue.toFixed(2)} ${currency}, top: ${result.topProducts.join(", ")}`);
  },
);

export const publish = shell(
  "publish",
  { upstream: ["report"], timeout: "1m", description: "Copy the report to the published folder and drop a _SUCCESS marker." },
  'set -euo pipefail; data="${TIDEFLOW_DATA_DIR:-/tmp/tideflow-examples}"; \
    mkdir -p "$data/published"; cp "$data/daily_sales/$BIZDATE/report.json" "$data/published/daily_sales_$BIZDATE.json"; \
    touch "$data/daily_sales/$BIZDATE/_SUCCESS"; echo "published daily_sales_$BIZDATE.json (cyctime $CYCTIME)"',
);

export default workflow("daily_sales", {
  description: "Nightly sales mart: orders → aggregates → quality gate → report.",
  schedule: "30 2 * * *",
  timezone: "Asia/Shanghai",
  concurrency: 2,
  params: { CURRENCY: "CNY" },
  tasks: [extract_orders, sales_by_region, sales_by_product, quality_check, report, publish],
});
