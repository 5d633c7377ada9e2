/** The API VS Code gives a webview's script (`acquireVsCodeApi`, callable once per page). */
export interface WebviewApi<State, Message> {
  postMessage(message: Message): void;
  getState(): State | undefined;
  setState(state: State): State;
}

declare function acquireVsCodeApi(): WebviewApi<unknown, unknown>;

/** Typed by the page's state and its messages to the extension; call once. */
export function webviewApi<State, Message>(): WebviewApi<State, Message> {
  return acquireVsCodeApi() as WebviewApi<State, Message>;
}
