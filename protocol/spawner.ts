/**
 * The runner ↔ spawn helper channel (runner/exec/spawner.ts, dist/spawner.js): one JSON
 * object per line on the helper's stdin (requests) and stdout (events).
 *
 * Why a helper: Node spawns with fork(), whose cost grows with the parent's memory — from
 * the runner, with its engine state and buffers, a `bash -c true` took twice as long as
 * from a bare Node process. The helper stays small, so each shell attempt costs about
 * what the bare spawn costs. It only starts processes and reports their exits; the
 * runner keeps everything else (process groups, kills, capture files, the journal).
 */

/** Sets the environment every later spawn starts from (the runner's own, once). */
export interface SpawnerEnvRequest {
  t: "env";
  env: Record<string, string>;
}

/**
 * Starts `file args` in a process group of its own (pgid = pid), stdin from /dev/null,
 * stdout and stderr appended to the files named (created 0600 when missing).
 */
export interface SpawnerSpawnRequest {
  t: "spawn";
  /** The runner's id for this spawn: events about it carry it. */
  id: number;
  file: string;
  args: string[];
  cwd: string;
  /** Added to (and overriding) the base environment. */
  env: Record<string, string>;
  stdout: string;
  stderr: string;
}

export type SpawnerRequest = SpawnerEnvRequest | SpawnerSpawnRequest;

/** The process exists: its pid, which is also its process group id. */
export interface SpawnerSpawnedEvent {
  t: "spawned";
  id: number;
  pid: number;
}

/** Nothing was started (a missing cwd, no such program, capture files not writable). */
export interface SpawnerFailedEvent {
  t: "failed";
  id: number;
  error: string;
}

/** The process exited (the helper reaped it): how. Its group may still have members. */
export interface SpawnerExitEvent {
  t: "exit";
  id: number;
  code: number | null;
  signal: string | null;
}

export type SpawnerEvent = SpawnerSpawnedEvent | SpawnerFailedEvent | SpawnerExitEvent;
