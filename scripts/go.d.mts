// Types of scripts/go.mjs for the TypeScript modules that use it (test/integration/go-sdk.test.ts, bench/go.ts).
import type { SpawnSyncReturns } from 'node:child_process';

export const GO_MODULE: string;
export const GO_DEBIAN_PACKAGES: string[];
export function ensureGo(): boolean;
export function goEnv(): { dir: string; env: Record<string, string | undefined> };
export function runGo(args: string[], opts?: { stdio?: 'inherit'; env?: Record<string, string>; timeoutMs?: number }, cwd?: string): number;
export function runGo(args: string[], opts: { stdio: 'pipe'; env?: Record<string, string>; timeoutMs?: number }, cwd?: string): SpawnSyncReturns<string>;
