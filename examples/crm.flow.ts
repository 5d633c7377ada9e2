/**
 * crm: a nightly snapshot of the CRM's accounts and contacts.
 *
 *   fetch_accounts ── sync_accounts ──┐
 *   fetch_contacts ───────────────────┴── sync_contacts ── mark_done
 *
 * daily_sales.report (examples/daily-sales.flow.ts) depends on sync_accounts, written
 * there as the cross-workflow upstream "crm.sync_accounts". Files go to
 * $TIDEFLOW_DATA_DIR (default /tmp/tideflow-examples)/crm/<BIZDATE>/.
 */
import { workflow, task, shell } from "tideflow";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const DATA_DIR = process.env.TIDEFLOW_DATA_DIR ?? "/tmp/tideflow-examples";

function partition(bizdate: string): string {
  return join(DATA_DIR, "crm", bizdate.replaceAll("-", ""));
}

/** Deterministic per bizdate, so reruns produce the same snapshot. */
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

const TIERS = ["free", "team", "business", "enterprise"];

export const fetch_accounts = task(
  "fetch_accounts",
  {
    description: "Change feed of accounts since the last snapshot (simulated): one row per change, so ids repeat.",
    retries: 3,
    retryDelay: "10s",
    timeout: "5m",
    params: { ACCOUNTS: "300", CHANGES: "450" },
  },
  async (ctx) => {
    const accounts = Number.parseInt(ctx.params.ACCOUNTS ?? "300", 10);
    const changes = Number.parseInt(ctx.params.CHANGES ?? "450", 10);
    const random = seeded(`accounts-${ctx.bizdate}`);
    const rows: string[] = [];
    for (let i = 0; i < changes; i++) {
      const id = `A${String(1 + Math.floor(random() * accounts)).padStart(5, "0")}`;
      const tier = TIERS[Math.floor(random() * TIERS.length)];
      const second = String(i % 60).padStart(2, "0");
      const minute = String(Math.floor(i / 60) % 60).padStart(2, "0");
      rows.push(`${id},${tier},${ctx.bizdate}T23:${minute}:${second}`);
    }
    await sleep(500, undefined, { signal: ctx.signal }); // the "API call"
    const dir = partition(ctx.bizdate);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "accounts_changes.csv"), rows.join("\n") + "\n");
    ctx.log.info(`fetched ${changes} account changes for ${ctx.bizdate}`);
  },
);

export const fetch_contacts = task(
  "fetch_contacts",
  { description: "Contacts export (simulated).", retries: 3, retryDelay: "10s", timeout: "5m" },
  async (ctx) => {
    const random = seeded(`contacts-${ctx.bizdate}`);
    const rows: string[] = [];
    for (let i = 1; i <= 600; i++) {
      const account = `A${String(1 + Math.floor(random() * 300)).padStart(5, "0")}`;
      rows.push(`C${String(i).padStart(6, "0")},${account},user${i}@example.com`);
    }
    ctx.signal.throwIfAborted();
    const dir = partition(ctx.bizdate);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "contacts_raw.csv"), rows.join("\n") + "\n");
    ctx.log.info(`fetched ${rows.length} contacts`);
  },
);

// Keep the latest change per account id: newest first, then the first row per id.
export const sync_accounts = shell(
  "sync_accounts",
  { upstream: [fetch_accounts], timeout: "2m", description: "Deduplicate the change feed into accounts.csv." },
  'set -euo pipefail; export LC_ALL=C; dir="${TIDEFLOW_DATA_DIR:-/tmp/tideflow-examples}/crm/$BIZDATE"; \
    sort -t, -k1,1 -k3,3r "$dir/accounts_changes.csv" | sort -t, -k1,1 -u -s > "$dir/accounts.csv"; \
    echo "changes: $(wc -l < "$dir/accounts_changes.csv"), accounts: $(wc -l < "$dir/accounts.csv")"; \
    echo "by tier:"; cut -d, -f2 "$dir/accounts.csv" | sort | uniq -c | sort -rn',
);

export const sync_contacts = shell(
  "sync_contacts",
  {
    upstream: [fetch_contacts, "sync_accounts"],
    timeout: "2m",
    description: "Keep contacts whose account exists in the snapshot.",
  },
  'set -euo pipefail; export LC_ALL=C; dir="${TIDEFLOW_DATA_DIR:-/tmp/tideflow-examples}/crm/$BIZDATE"; \
    cut -d, -f1 "$dir/accounts.csv" | sort > "$dir/account_ids.txt"; \
    sort -t, -k2,2 "$dir/contacts_raw.csv" | join -t, -1 2 -2 1 - "$dir/account_ids.txt" > "$dir/contacts.csv"; \
    echo "contacts kept: $(wc -l < "$dir/contacts.csv") of $(wc -l < "$dir/contacts_raw.csv")"',
);

export const mark_done = shell(
  "mark_done",
  { upstream: ["sync_contacts"], description: "Drop the _SUCCESS marker downstream jobs look for." },
  'touch "${TIDEFLOW_DATA_DIR:-/tmp/tideflow-examples}/crm/$BIZDATE/_SUCCESS" && echo "crm snapshot $BIZDATE_ISO done"',
);

export default workflow("crm", {
  description: "Nightly CRM snapshot (accounts and contacts).",
  schedule: "0 1 * * *",
  timezone: "Asia/Shanghai",
  concurrency: 2,
  tasks: [fetch_accounts, fetch_contacts, sync_accounts, sync_contacts, mark_done],
});
