/**
 * Params in a shell task's environment (SPEC §1): each param is `PARAM_<NAME>`, the name
 * upper-cased with every character but A-Z, 0-9 and _ as `_`. The runner sets them; the
 * analyzer checks that a name maps to a variable of its own.
 */

/** A param name: a letter or `_`, then letters, digits, `_` and `-` (which becomes `_`). */
export const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `min-rows` → `PARAM_MIN_ROWS`. */
export function paramVar(name: string): string {
  return `PARAM_${name.toUpperCase().replace(/[^A-Z0-9_]/g, "_")}`;
}
