// Memory stays flat: `lifeboat backup files -` of a 1 GiB SQL dump piped from a generator process,
// then `lifeboat cat` of it into a sha256 hasher, each CLI process staying under 200 MiB peak RSS.
// LIFEBOAT_TEST_MEMORY_MIB overrides the size (bench/README.md has the figures).
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { generateIdentity, writeIdentityFile } from "../../src/stream/age/index.js";
import {
  MAX_RSS_PRELOAD,
  REPO_ROOT,
  cliEnv,
  describeRun,
  ensureBuilt,
  parseJson,
  runCli,
} from "../helpers/cli.js";

const MiB = 1024 * 1024;
const SIZE = Number(process.env.LIFEBOAT_TEST_MEMORY_MIB ?? 1024) * MiB;
const RSS_LIMIT = 200 * MiB;

let dir = "";
let config = "";

async function peakRss(file: string): Promise<number> {
  return Number((await readFile(file, "utf8")).trim());
}

beforeAll(async () => {
  await ensureBuilt();
  dir = await mkdtemp(path.join(tmpdir(), "lifeboat-memory-"));
  const { identity, recipient } = generateIdentity();
  await writeIdentityFile(path.join(dir, "identity.txt"), identity);
  config = path.join(dir, "lifeboat.yaml");
  await writeFile(
    config,
    `repositories:\n  local: { type: local, path: ${dir}/repo }\n` +
      `encryption: { recipients: [${recipient}], identityFile: ${dir}/identity.txt }\n`,
  );
  const init = await runCli(["-c", config, "repo", "init"], { env: cliEnv(dir) });
  expect(init.code, describeRun(init)).toBe(0);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

it(`backs up and reads back ${SIZE / MiB} MiB with each lifeboat process under 200 MiB peak RSS`, async () => {
  // The generator repeats a 64 MiB period: far beyond zstd's window, so compression works as hard
  // as on fresh text, while the generator stays cheap next to the process under test.
  const generator = spawn(
    process.execPath,
    [path.join(REPO_ROOT, "bench", "sql-dump.mjs"), String(SIZE), "3", "64"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let generated = "";
  generator.stderr.on("data", (chunk: Buffer) => (generated += chunk.toString()));
  const generatorExit = new Promise<number | null>((resolve) => generator.once("close", resolve));

  const backupRss = path.join(dir, "backup.rss");
  const backup = await runCli(
    ["-c", config, "--json", "backup", "files", "-", "--stdin-name", "dump.sql"],
    {
      env: cliEnv(dir, { LIFEBOAT_MAX_RSS_FILE: backupRss }),
      nodeArgs: ["--require", MAX_RSS_PRELOAD],
      stdin: generator.stdout,
      timeoutMs: 300_000,
    },
  );
  expect(await generatorExit, generated).toBe(0);
  expect(backup.code, describeRun(backup)).toBe(0);
  const [, sha256, bytes] = /^sha256 ([0-9a-f]{64}) (\d+)$/m.exec(generated) ?? [];
  expect(Number(bytes)).toBe(SIZE);
  const result = parseJson<{ id: string; manifest: { objects: { plain: unknown }[] } }>(backup);
  expect(result.manifest.objects[0]!.plain).toEqual({ sha256, bytes: SIZE });

  const hash = createHash("sha256");
  let received = 0;
  const hasher = new Writable({
    highWaterMark: MiB,
    write(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      received += chunk.length;
      callback();
    },
  });
  const catRss = path.join(dir, "cat.rss");
  const cat = await runCli(["-c", config, "cat", result.id, "dump.sql"], {
    env: cliEnv(dir, { LIFEBOAT_MAX_RSS_FILE: catRss }),
    nodeArgs: ["--require", MAX_RSS_PRELOAD],
    stdout: hasher,
    timeoutMs: 300_000,
  });
  await finished(hasher);
  expect(cat.code, describeRun(cat)).toBe(0);
  expect({ sha256: hash.digest("hex"), bytes: received }).toEqual({ sha256, bytes: SIZE });

  const peaks = { backup: await peakRss(backupRss), cat: await peakRss(catRss) };
  console.info(
    `peak RSS for ${SIZE / MiB} MiB: backup ${(peaks.backup / MiB).toFixed(0)} MiB in ${backup.ms} ms, ` +
      `cat ${(peaks.cat / MiB).toFixed(0)} MiB in ${cat.ms} ms`,
  );
  expect(peaks.backup).toBeGreaterThan(20 * MiB); // a real measurement, not a zero from a failed hook
  expect(peaks.backup).toBeLessThan(RSS_LIMIT);
  expect(peaks.cat).toBeLessThan(RSS_LIMIT);
});
