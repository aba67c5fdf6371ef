import { spawn } from "node:child_process";
import { LifeboatError } from "../errors.js";
import type { LifeboatConfig } from "../config/schema.js";
import { durationSeconds } from "../config/schema.js";

export interface HookResult {
  name: string;
  ok: boolean;
  durationMs: number;
  problem?: string;
}

/**
 * Runs a user's hook command through the shell (it is their command line, with their pipes and
 * quoting). Output goes to our stderr so operators see it live; a non-zero exit is a failure.
 */
export async function runHook(
  name: string,
  command: string,
  timeoutMs: number,
): Promise<HookResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn("/bin/sh", ["-c", command], {
      stdio: ["ignore", "inherit", "inherit"],
      timeout: timeoutMs,
      killSignal: "SIGKILL",
    });
    child.once("error", (error) =>
      resolve({ name, ok: false, durationMs: Date.now() - started, problem: error.message }),
    );
    child.once("close", (code, signal) => {
      const durationMs = Date.now() - started;
      if (code === 0) resolve({ name, ok: true, durationMs });
      else
        resolve({
          name,
          ok: false,
          durationMs,
          problem: signal ? `killed by ${signal} (timeout?)` : `exited with status ${code}`,
        });
    });
  });
}

export async function smokeCheck(
  url: string,
  expectStatus: number | undefined,
  timeoutMs: number,
): Promise<HookResult> {
  const started = Date.now();
  try {
    const response = await fetch(url, {
      signal: AbortSignal.timeout(timeoutMs),
      redirect: "manual",
    });
    await response.body?.cancel();
    const ok =
      expectStatus === undefined
        ? response.status >= 200 && response.status < 300
        : response.status === expectStatus;
    return {
      name: `GET ${url}`,
      ok,
      durationMs: Date.now() - started,
      ...(ok ? {} : { problem: `answered ${response.status}` }),
    };
  } catch (error) {
    return {
      name: `GET ${url}`,
      ok: false,
      durationMs: Date.now() - started,
      problem: (error as Error).message,
    };
  }
}

export function hookTimeoutMs(config: LifeboatConfig): number {
  return durationSeconds(config.application.hookTimeout) * 1000;
}

export async function stopApplication(config: LifeboatConfig): Promise<HookResult | undefined> {
  const command = config.application.stopCommand;
  if (!command) return undefined;
  const result = await runHook("stop application", command, hookTimeoutMs(config));
  if (!result.ok) {
    throw new LifeboatError(
      "ABORTED",
      `the stop-application hook failed (${result.problem}); the database was not touched`,
      {
        hint: "fix application.stopCommand, or stop the application yourself and remove the hook",
      },
    );
  }
  return result;
}

/** Starts the application and runs the smoke checks; failures are reported, not thrown. */
export async function startApplication(config: LifeboatConfig): Promise<HookResult[]> {
  const results: HookResult[] = [];
  const timeout = hookTimeoutMs(config);
  if (config.application.startCommand)
    results.push(await runHook("start application", config.application.startCommand, timeout));
  if (results.every((r) => r.ok)) {
    for (const check of config.application.smokeChecks) {
      results.push(await retrySmoke(check.url, check.expectStatus, timeout));
    }
  }
  return results;
}

/** An application needs a moment to come up: retry a smoke check until it passes or time runs out. */
async function retrySmoke(
  url: string,
  expectStatus: number | undefined,
  timeoutMs: number,
): Promise<HookResult> {
  const deadline = Date.now() + timeoutMs;
  let last: HookResult;
  do {
    last = await smokeCheck(url, expectStatus, Math.min(10_000, timeoutMs));
    if (last.ok) return last;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  } while (Date.now() < deadline);
  return last;
}
