/** Runs the real `lars` command in a child process. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LARS_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'lars.mjs');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `lars args` to completion; stdin is not a terminal (closed, or `input` when given). */
export function lars(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000, input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LARS_BIN, ...args], { env: { ...process.env, LARS_LOG_LEVEL: 'warn', ...env }, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (input !== undefined) child.stdin!.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`lars ${args.join(' ')} timed out; stdout: ${stdout} stderr: ${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

function collectLines(stream: NodeJS.ReadableStream, lines: string[]): void {
  let buf = '';
  stream.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    lines.push(...parts);
  });
}

/** Starts a long-running `lars` command; `lines` / `errLines` collect its stdout / stderr lines as they come. */
export function larsLive(args: string[], env: Record<string, string> = {}): { child: ChildProcess; lines: string[]; errLines: string[]; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [LARS_BIN, ...args], { env: { ...process.env, LARS_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const errLines: string[] = [];
  collectLines(child.stdout!, lines);
  collectLines(child.stderr!, errLines);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, lines, errLines, exited };
}

/** Whether `script` (util-linux) is here to run a command on a pseudo-terminal. */
export function hasScript(): boolean {
  return spawnSync('sh', ['-c', 'command -v script'], { encoding: 'utf8' }).stdout.trim() !== '';
}

/**
 * Starts `lars args` on a pseudo-terminal (through `script`), as a person at a
 * terminal runs it; `input` is typed in. `output` collects what the terminal shows.
 */
export function larsOnTerminal(args: string[], env: Record<string, string> = {}, input = ''): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  const cmd = [process.execPath, LARS_BIN, ...args].map(quote).join(' ');
  const child = spawn('script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, LARS_LOG_LEVEL: 'warn', ...env }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  child.stdin!.write(input);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, output: () => out, exited };
}
