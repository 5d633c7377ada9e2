import type { Hover, Position } from "vscode-languageserver";
import type { FileAnalysis, TaskModel } from "../../protocol/model";
import { describeCron, nextFireTimes } from "../../common/cron";
import { localZone } from "../../common/zone";
import { formatDuration } from "../../common/durations";
import { containsPosition } from "../analyzer/line-index";
import type { TaskHandle, WorkspaceIndex } from "../analyzer/workspace";

export function hover(index: WorkspaceIndex, uri: string, position: Position, now = new Date()): Hover | null {
  const file = index.get(uri);
  if (!file) return null;
  const wf = file.workflow;
  if (wf?.scheduleRange && wf.schedule && containsPosition(wf.scheduleRange, position)) {
    return { range: wf.scheduleRange, contents: { kind: "markdown", value: scheduleHover(wf.schedule, wf.timezone, now) } };
  }
  if (wf && containsPosition(wf.idRange, position)) {
    const lines = [`**workflow** \`${wf.id}\``, ""];
    if (wf.description) lines.push(wf.description, "");
    lines.push(`- schedule: ${wf.schedule ? `\`${wf.schedule}\` (${describeCron(wf.schedule)})` : "none (unscheduled)"}`);
    lines.push(`- timezone: ${wf.timezone ?? "the machine's zone"}`);
    lines.push(`- tasks: ${wf.tasks.length}${wf.concurrency ? `, at most ${wf.concurrency} at once` : ""}`);
    return { range: wf.idRange, contents: { kind: "markdown", value: lines.join("\n") } };
  }
  const hit = index.taskAt(uri, position);
  if (!hit) return null;
  return { range: hit.at.range, contents: { kind: "markdown", value: taskHover(index, hit.target) } };
}

function scheduleHover(schedule: string, timezone: string | undefined, now: Date): string {
  const zone = timezone ?? localZone();
  const lines = [`**${describeCron(schedule)}** (${zone})`, "", "| next fire time (cyctime) | bizdate |", "|---|---|"];
  try {
    for (const f of nextFireTimes(schedule, timezone, 5, now)) lines.push(`| ${f.cyctime.replace("T", " ")} | ${f.bizdate} |`);
  } catch (e) {
    lines.push(`| (cannot compute: ${e instanceof Error ? e.message : String(e)}) | |`);
  }
  return lines.join("\n");
}

function taskHover(index: WorkspaceIndex, target: TaskHandle): string {
  const t: TaskModel = target.task;
  const file: FileAnalysis = target.file;
  const name = (h: TaskHandle) => (h.file === file ? `\`${h.task.id}\`` : `\`${h.key}\``);
  const up = index.upstream(target).map(name);
  const down = index.downstream(target).map(name);
  const lines = [`**${t.kind === "shell" ? "shell task" : "task"}** \`${t.id}\`${file.workflow ? ` in workflow \`${file.workflow.id}\`` : ""}`, ""];
  if (t.description) lines.push(t.description, "");
  lines.push(`- upstream: ${up.length ? up.join(", ") : "none"}`);
  lines.push(`- downstream: ${down.length ? down.join(", ") : "none"}`);
  lines.push(`- retries: ${t.retries ?? 0}${t.retryDelayMs !== undefined ? `, ${formatDuration(t.retryDelayMs)} apart` : ""}`);
  lines.push(`- timeout: ${t.timeoutMs !== undefined ? formatDuration(t.timeoutMs) : "none"}`);
  if (t.params && Object.keys(t.params).length) {
    lines.push(`- params: ${Object.entries(t.params).map(([k, v]) => `\`${k}=${v}\``).join(", ")}`);
  }
  if (t.command) lines.push("", "```sh", t.command, "```");
  return lines.join("\n");
}
