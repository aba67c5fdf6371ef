import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const BIN = path.join(REPO_ROOT, "dist", "cli", "bin.js");

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI in `cwd` with a controlled environment (no colours, no inherited PG*). */
export function lifeboat(
  cwd: string,
  args: string[],
  env: Record<string, string> = {},
  input?: string,
): Promise<Run> {
  if (!existsSync(BIN))
    throw new Error(`${BIN} is missing: run \`npm run build\` (npm test does it first)`);
  const base: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env))
    if (!key.startsWith("PG")) base[key] = value;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd,
      env: { ...base, NO_COLOR: "1", ...env },
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (c: Buffer) => out.push(c));
    child.stderr!.on("data", (c: Buffer) => err.push(c));
    child.once("error", reject);
    child.once("close", (code, signal) =>
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      }),
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** A workspace with a fresh identity; returns its dir and recipient. */
export async function workspace(
  prefix = "lifeboat-ws-",
): Promise<{ dir: string; recipient: string; identityFile: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  const identityFile = path.join(dir, "identity.txt");
  const run = await lifeboat(dir, ["key", "generate", "--out", identityFile]);
  if (run.code !== 0) throw new Error(`key generate failed: ${run.stderr}`);
  return { dir, recipient: run.stdout.trim(), identityFile };
}

export async function writeConfig(dir: string, yaml: string): Promise<string> {
  const file = path.join(dir, "lifeboat.yaml");
  await writeFile(file, yaml);
  return file;
}

/** Asserts a command succeeded, with its output in the failure message. */
export function ok(run: Run): Run {
  if (run.code !== 0)
    throw new Error(`lifeboat exited ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  return run;
}
