// Drives the built lifeboat CLI (dist/cli/bin.js) as a child process, the way users and scripts
// run it: with an environment the test controls and stdout/stderr captured separately.
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import type { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CLI_BIN = path.join(REPO_ROOT, "dist", "cli", "bin.js");
/** Preload that reports a process's peak RSS into $LIFEBOAT_MAX_RSS_FILE when it exits. */
export const MAX_RSS_PRELOAD = path.join(REPO_ROOT, "test", "fixtures", "max-rss.cjs");

/** `npm test` builds first (pretest); a bare `vitest run` on a fresh checkout builds here. */
export async function ensureBuilt(): Promise<void> {
  if (existsSync(CLI_BIN)) return;
  await promisify(execFile)(
    process.execPath,
    [path.join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
    { cwd: REPO_ROOT },
  );
}

/**
 * A minimal environment: no FORCE_COLOR/NO_COLOR, AWS_* or LIFEBOAT_* leaks from the test runner,
 * a private HOME (no ~/.aws), and no instance-metadata lookups.
 */
export function cliEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    LANG: "C.UTF-8",
    AWS_EC2_METADATA_DISABLED: "true",
    ...extra,
  };
}

export interface CliResult {
  args: string[];
  /** Exit status; null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  env: Record<string, string>;
  cwd?: string;
  /** Extra node flags, e.g. ["--require", MAX_RSS_PRELOAD]. */
  nodeArgs?: string[];
  /** Piped into stdin (stdin is closed otherwise). */
  stdin?: Readable;
  /** Receives stdout instead of capturing it (for large outputs). */
  stdout?: Writable;
  timeoutMs?: number;
}

/** Runs `lifeboat <args>` to completion. Output is captured as UTF-8 text. */
export function runCli(args: string[], options: RunOptions): Promise<CliResult> {
  const started = Date.now();
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), CLI_BIN, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: options.env,
    stdio: [options.stdin ? "pipe" : "ignore", "pipe", "pipe"],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const { stdout, stderr } = child as { stdout: Readable; stderr: Readable };
  if (options.stdout) stdout.pipe(options.stdout);
  else stdout.on("data", (chunk: Buffer) => out.push(chunk));
  stderr.on("data", (chunk: Buffer) => err.push(chunk));
  if (options.stdin && child.stdin) {
    child.stdin.on("error", () => undefined); // the CLI may exit before reading everything
    options.stdin.pipe(child.stdin);
  }
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        args,
        code,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        ms: Date.now() - started,
      });
    });
  });
}

/** Parses the one JSON document a `--json` run prints on stdout. */
export function parseJson<T = Record<string, unknown>>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(
      `lifeboat ${result.args.join(" ")}: stdout is not one JSON document:\n${result.stdout}\nstderr:\n${result.stderr}`,
    );
  }
}

/** A readable description of a run for assertion messages. */
export function describeRun(result: CliResult): string {
  return `lifeboat ${result.args.join(" ")} → exit ${result.code}\nstdout: ${result.stdout.slice(0, 2000)}\nstderr: ${result.stderr.slice(0, 2000)}`;
}
