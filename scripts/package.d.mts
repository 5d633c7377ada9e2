// Types of scripts/package.mjs, for TypeScript callers (test/e2e/harness.ts).
export const ROOT: string;
export function vsixTarget(platform?: string, arch?: string): string;
export function defaultVsixPath(target?: string): string;
export function packagingInputs(): string[];
export function isStale(vsix?: string): boolean;
export function zipEntries(file: string): { name: string; size: number; mode: number }[];
export function checkVsix(vsix: string, options?: { target?: string; tsPlugin?: boolean }): { name: string; size: number; mode: number }[];
export function packageExtension(options?: { build?: boolean; minify?: boolean; target?: string; out?: string; quiet?: boolean }): Promise<{ vsix: string; bytes: number; files: number; stage: string; tsPlugin: boolean }>;
