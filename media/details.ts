/**
 * The task instance details page's script (bundled to media/details.js). The extension
 * renders the page; this only turns "Show log" clicks into messages and keeps the scroll
 * position across re-renders (the extension replaces the page when the instance changes).
 */
import type { DetailsViewState, DetailsWebviewMessage } from "../protocol/webview";
import { webviewApi } from "./webview-api";

const vscode = webviewApi<DetailsViewState, DetailsWebviewMessage>();
const saved: DetailsViewState = { ...(vscode.getState() ?? {}) };

if (saved.scrollY !== undefined) window.scrollTo(0, saved.scrollY);

let scheduled = false;
window.addEventListener("scroll", () => {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    saved.scrollY = window.scrollY;
    vscode.setState(saved);
  });
});

document.addEventListener("click", (e) => {
  const button = e.target instanceof Element ? e.target.closest("button.show-log") : null;
  const attempt = Number(button?.getAttribute("data-attempt"));
  if (!button || !Number.isInteger(attempt) || attempt < 1) return;
  e.preventDefault();
  vscode.postMessage({ type: "showLog", attempt });
});
