import { spawn, type ChildProcess } from "node:child_process";
import { basename } from "node:path";
import { PassThrough, type Readable, type Writable } from "node:stream";
import { LifeboatError } from "../errors.js";
import { firstMeaningfulLine, onExit } from "./process.js";

export interface SpawnStreamOptions {
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** Names the step in errors, e.g. "pg_dump of app". */
  label?: string;
  hint?: string;
}

export interface ToolStream {
  child: ChildProcess;
  /** Ends only after the tool exited 0; errors (with its stderr) when it exits non-zero. */
  output: Readable;
  stderr(): string;
}

/**
 * A tool's stdout as a stream that cannot end cleanly unless the tool succeeded: a pg_dump that
 * dies half-way must surface as an error on the stream, not as a short, "complete" backup.
 * If the consumer goes away, the tool is killed.
 */
export function spawnOutput(
  path: string,
  args: readonly string[],
  options: SpawnStreamOptions,
): ToolStream {
  const child = spawn(path, args, {
    env: options.env,
    cwd: options.cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = new PassThrough({ highWaterMark: 1 << 20 });
  const stderr = collectStderr(child);
  let exited = false;
  child.stdout!.pipe(output, { end: false });
  child.once("error", (error) => output.destroy(spawnError(path, error, options)));
  child.once("close", (code, signal) => {
    exited = true;
    if (code === 0) output.end();
    else output.destroy(exitError(path, code, signal, stderr(), options));
  });
  output.once("close", () => {
    if (!exited) child.kill("SIGTERM");
  });
  return { child, output, stderr };
}

export interface ToolSink {
  child: ChildProcess;
  input: Writable;
  /** Resolves when the tool exited 0; rejects with its stderr otherwise. */
  done: Promise<{ stdout: string; stderr: string }>;
}

/** A tool that reads a stream on stdin (pg_restore, psql). */
export function spawnInput(
  path: string,
  args: readonly string[],
  options: SpawnStreamOptions,
): ToolSink {
  const child = spawn(path, args, {
    env: options.env,
    cwd: options.cwd,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const stderr = collectStderr(child);
  const out: Buffer[] = [];
  child.stdout!.on("data", (chunk: Buffer) => out.push(chunk));
  // The tool may stop reading early (it failed, or it has what it needs); its exit status decides.
  child.stdin!.on("error", () => undefined);
  const done = new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
    child.once("error", (error) => reject(spawnError(path, error, options)));
    child.once("close", (code, signal) => {
      if (code === 0) resolve({ stdout: Buffer.concat(out).toString("utf8"), stderr: stderr() });
      else reject(exitError(path, code, signal, stderr(), options));
    });
  });
  return { child, input: child.stdin!, done };
}

/**
 * A pg_dump or pg_restore must not outlive an interrupted lifeboat (Ctrl-C, SIGTERM from a
 * scheduler): a restore would go on writing into a database nobody is watching.
 */
export function killWithUs(child: ChildProcess): void {
  const forget = onExit(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  });
  child.once("close", forget);
}

function collectStderr(child: ChildProcess): () => string {
  const chunks: Buffer[] = [];
  let size = 0;
  child.stderr!.on("data", (chunk: Buffer) => {
    // Keep the head and stop: a chatty tool must not grow memory without bound.
    if (size < 256 * 1024) chunks.push(chunk);
    size += chunk.length;
  });
  return () => Buffer.concat(chunks).toString("utf8");
}

function spawnError(
  path: string,
  error: NodeJS.ErrnoException,
  options: SpawnStreamOptions,
): LifeboatError {
  const what = options.label ?? basename(path);
  if (error.code === "ENOENT") {
    return new LifeboatError("TOOL_MISSING", `${what}: ${basename(path)} not found at ${path}`, {
      cause: error,
    });
  }
  return new LifeboatError(
    "TOOL_FAILED",
    `${what}: could not run ${basename(path)}: ${error.message}`,
    { cause: error },
  );
}

function exitError(
  path: string,
  code: number | null,
  signal: NodeJS.Signals | null,
  stderr: string,
  options: SpawnStreamOptions,
): LifeboatError {
  const what = options.label ?? basename(path);
  const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
  const detail = firstMeaningfulLine(stderr);
  const codeName =
    /could not connect|connection to server|password authentication failed|no password supplied|Connection refused/i.test(
      stderr,
    )
      ? "PG_CONNECT"
      : "TOOL_FAILED";
  return new LifeboatError(codeName, `${what} ${how}${detail ? `: ${detail}` : ""}`, {
    ...(options.hint ? { hint: options.hint } : {}),
    data: { tool: basename(path), code, signal },
  });
}
