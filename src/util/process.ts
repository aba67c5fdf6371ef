import { spawn } from "node:child_process";
import { basename } from "node:path";
import { LifeboatError } from "../errors.js";

export interface RunToolOptions {
  /** Added to (or, with inheritEnv: false, replacing) the environment. Secrets go here, never in args. */
  env?: Record<string, string | undefined>;
  /** Inherit process.env under `env`; default true. */
  inheritEnv?: boolean;
  /** Written to stdin, which is then closed; without it stdin is /dev/null. */
  input?: string | Buffer;
  uid?: number;
  gid?: number;
  cwd?: string;
  /** Kill the tool (SIGKILL) after this long; the result then has signal "SIGKILL". */
  timeoutMs?: number;
}

export interface ToolResult {
  stdout: string;
  stderr: string;
  /** Exit code, or null when a signal ended the tool. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Runs an executable without a shell and collects its output. A non-zero exit is a result, not an
 * error (callers map codes to meanings, e.g. psql's 3 = SQL error); use `toolFailed` to raise it.
 * Only a missing executable throws (TOOL_MISSING).
 */
export function runTool(
  path: string,
  args: readonly string[],
  options: RunToolOptions = {},
): Promise<ToolResult> {
  const env =
    options.inheritEnv === false ? { ...options.env } : { ...process.env, ...options.env };
  return new Promise((resolve, reject) => {
    const child = spawn(path, args, {
      env: dropUndefined(env),
      cwd: options.cwd,
      uid: options.uid,
      gid: options.gid,
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      timeout: options.timeoutMs,
      killSignal: "SIGKILL",
    });
    const forget = onExit(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    });
    child.once("close", forget);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => err.push(chunk));
    child.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") {
        reject(
          new LifeboatError("TOOL_MISSING", `${basename(path)} not found at ${path}`, {
            cause: error,
          }),
        );
      } else {
        reject(
          new LifeboatError("TOOL_FAILED", `could not run ${basename(path)}: ${error.message}`, {
            cause: error,
          }),
        );
      }
    });
    child.on("close", (code, signal) => {
      resolve({
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        code,
        signal,
      });
    });
    if (child.stdin) {
      // The tool may exit before reading all input; its exit status tells the real story.
      child.stdin.on("error", () => {});
      child.stdin.end(options.input);
    }
  });
}

/** The TOOL_FAILED error for a finished tool: name, exit status and its most telling stderr line. */
export function toolFailed(
  path: string,
  result: Pick<ToolResult, "code" | "signal" | "stderr">,
  details: { hint?: string; context?: string } = {},
): LifeboatError {
  const name = basename(path);
  const status = result.signal
    ? `was killed by ${result.signal}`
    : `exited with code ${result.code}`;
  const line = firstMeaningfulLine(result.stderr);
  const message = `${name} ${status}${line ? `: ${line}` : ""}${details.context ? ` (${details.context})` : ""}`;
  return new LifeboatError("TOOL_FAILED", message, {
    hint: details.hint,
    data: { tool: name, exitCode: result.code, signal: result.signal },
  });
}

/** Tools print warnings (locale, cwd) before the real error; prefer a line that reads like one. */
export function firstMeaningfulLine(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "");
  const error = lines.find((line) =>
    /\b(error|fatal|panic|could not|cannot|failed|denied)\b/i.test(line),
  );
  return error ?? lines[0] ?? "";
}

function dropUndefined(env: Record<string, string | undefined>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined) result[key] = value;
  return result;
}

// ---------------------------------------------------------------------------------------------
// Exit cleanup: child processes we start in their own session (postgres via pg_ctl) survive us
// unless stopped, so modules register synchronous cleanups that run however the process ends.

type Cleanup = () => void;

const cleanups = new Set<Cleanup>();
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
let installed = false;

/**
 * Registers `fn` to run once when the process exits (normal end, process.exit, uncaught error,
 * SIGINT/SIGTERM/SIGHUP). `fn` must be synchronous (use spawnSync): nothing async runs in 'exit'.
 * Returns a function that unregisters it, for when the resource was released normally.
 */
export function onExit(fn: Cleanup): () => void {
  install();
  cleanups.add(fn);
  return () => {
    cleanups.delete(fn);
  };
}

function runCleanups(): void {
  const pending = [...cleanups].reverse();
  cleanups.clear();
  for (const fn of pending) {
    try {
      fn();
    } catch {
      // One failed cleanup must not stop the others; there is nobody left to report to.
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  // Another listener (e.g. the CLI's graceful abort) owns this signal and decides whether to
  // exit; if it does, the 'exit' hook cleans up. Only when we are alone do we act like the
  // default handler: clean up, then die by the same signal so the exit status stays 128+n.
  if (process.listenerCount(signal) > 1) return;
  runCleanups();
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  process.removeListener("exit", runCleanups);
  installed = false;
  process.kill(process.pid, signal);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", runCleanups);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}
