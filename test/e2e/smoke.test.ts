/** Smoke: the packaged extension in a real VS Code (code-server) opens the examples. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { launch, leftoverProcesses, type Workbench } from "./harness";

describe("e2e smoke", { concurrency: false, timeout: 600_000 }, () => {
  let wb: Workbench | undefined;
  let tempDir = "";

  before(async () => {
    wb = await launch();
    tempDir = wb.tempDir;
  }, { timeout: 600_000 });

  after(async () => {
    await wb?.close();
  });

  test("the workbench loads and opens a workflow file in an editor tab", async () => {
    const w = wb!;
    assert.equal(await w.page.locator(".monaco-workbench").count(), 1);
    // The vsix was installed and its extension activated (activationEvents: workspaceContains *.flow.ts).
    await w.waitForActivation("tideflow.tideflow");
    await w.openFile("daily-sales.flow.ts");
    assert.equal(await w.tab("daily-sales.flow.ts").count(), 1);
    // The editor shows the file's text.
    await w.page.locator(".editor-instance .view-lines", { hasText: "daily_sales" }).first().waitFor();
    await w.screenshot("smoke-daily-sales");
    assert.equal(await w.page.locator('.activitybar a.action-label[aria-label^="Tideflow"]').count(), 1);
  });

  test("close() leaves no process of the harness behind", async () => {
    await wb!.close();
    wb = undefined;
    const left = leftoverProcesses().filter((l) => l.includes(tempDir));
    assert.deepEqual(left, []);
  });
});
