import { spawn } from "node:child_process";
import { appendFile, mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { LifeboatError } from "../errors.js";
import { toolFailed } from "../util/process.js";

/**
 * Helpers for a data directory being restored: an empty target, a streamed `tar -x`, and the
 * recovery settings lifeboat owns at the end of postgresql.auto.conf.
 */

const BLOCK_BEGIN = "# lifeboat restore pitr: begin";
const BLOCK_END = "# lifeboat restore pitr: end";

export async function prepareTargetDir(dir: string): Promise<void> {
  const entries = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  if (entries && entries.length > 0) {
    throw new LifeboatError("USAGE", `${dir} is not empty`, {
      hint: "restore into a new or empty directory",
    });
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

export async function extractTar(source: NodeJS.ReadableStream, dir: string): Promise<void> {
  const tar = spawn("tar", ["-x", "-f", "-", "-C", dir, "--no-same-owner"], {
    stdio: ["pipe", "ignore", "pipe"],
  });
  let stderr = "";
  tar.stderr.setEncoding("utf8").on("data", (t: string) => (stderr += t));
  const exited = new Promise<number | null>((resolve, reject) => {
    tar.once("error", reject);
    tar.once("close", resolve);
  });
  try {
    await pipeline(source, tar.stdin);
  } catch (error) {
    tar.kill("SIGKILL");
    await exited.catch(() => undefined);
    throw error;
  }
  const code = await exited;
  if (code !== 0)
    throw toolFailed("tar", { code, signal: null, stderr }, { context: `extracting into ${dir}` });
}

/** Our settings live between markers at the end of postgresql.auto.conf, which is read last. */
export async function writeRecoveryBlock(
  dataDir: string,
  settings: Record<string, string>,
): Promise<void> {
  const file = path.join(dataDir, "postgresql.auto.conf");
  const current = await readFile(file, "utf8").catch(() => "");
  const start = current.indexOf(BLOCK_BEGIN);
  const end = current.indexOf(BLOCK_END);
  const kept =
    start >= 0 && end > start
      ? current.slice(0, start) + current.slice(end + BLOCK_END.length + 1)
      : current;
  const quote = (v: string) => `'${v.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${quote(v)}`);
  await writeFile(file, kept.endsWith("\n") || kept === "" ? kept : `${kept}\n`);
  if (lines.length > 0)
    await appendFile(file, `${BLOCK_BEGIN}\n${lines.join("\n")}\n${BLOCK_END}\n`);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
