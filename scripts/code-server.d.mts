// Types of scripts/code-server.mjs, for TypeScript callers (test/e2e/harness.ts).
export const CODE_SERVER_VERSION: string;
export const DEBIAN_PACKAGES: string[];
export function codeServerDir(version?: string): string;
export function codeServerEntry(dir?: string): string;
export function isInstalled(dir?: string): boolean;
export function missingDebianPackages(names?: string[]): string[];
export function ensureDebianPackages(names?: string[]): void;
export function ensureCodeServer(options?: { version?: string; dir?: string; packages?: string[] }): Promise<{ dir: string; entry: string; installed: boolean }>;
export function freePort(port?: number): Promise<number | undefined>;
export function quietSettings(options: { trust?: boolean }): Record<string, unknown>;
export function seedSettings(userDataDir: string, options?: { trust?: boolean; extra?: Record<string, unknown> }): string;
export function descendants(root: number): number[];
export function groupMembers(pgid: number): number[];
export function installExtension(options: { vsix: string; userDataDir: string; extensionsDir: string; entry?: string }): string;

export interface StartCodeServerOptions {
  workspace: string;
  userDataDir: string;
  extensionsDir: string;
  /** Default: a free port. */
  port?: number;
  /** true: trusted (--disable-workspace-trust); false: workspace trust on, restricted mode. */
  trust?: boolean;
  vsix?: string;
  settings?: Record<string, unknown>;
  env?: Record<string, string>;
  logFile?: string;
  timeoutMs?: number;
}

export interface CodeServer {
  /** http://127.0.0.1:PORT/ */
  url: string;
  /** url + `?folder=<workspace>` */
  workbenchUrl: string;
  port: number;
  /** pid of code-server, also its process group id */
  pid: number;
  logFile: string;
  workspace: string;
  userDataDir: string;
  extensionsDir: string;
  /** Ends the process group and escaped descendants; rejects if any survives SIGKILL. */
  stop(options?: { graceMs?: number }): Promise<void>;
}

export function startCodeServer(options: StartCodeServerOptions): Promise<CodeServer>;
