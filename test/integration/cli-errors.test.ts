// The foundation's failure contract, through the real CLI: wrong identity, truncated object,
// flipped byte, missing manifest, unreachable endpoint, wrong credentials and invalid config each
// give one `error[CODE]: message — hint` line on stderr, the documented exit status, a JSON error
// with --json, and nothing on stdout that reads as success. Secrets never appear in any output.
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_TABLE, type ErrorCode } from "../../src/errors.js";
import {
  cliEnv,
  describeRun,
  ensureBuilt,
  parseJson,
  runCli,
  type CliResult,
} from "../helpers/cli.js";
import { createTestBucket, deleteTestBucket, s3TestConfig } from "../helpers/s3.js";

const SUCCESS = /written to|restored \d+ file|^ok\s|^\{\s*"ok": true|is valid|created at/m;
const STACK_FRAME = /^\s+at .+[:(]\d+/m;
const WRONG_SECRET = "wrong-secret-9f3c2e1d7a6b";

let dir = "";
let bucket = "";
let config = "";
let id = "";
let recipient = "";
let env: Record<string, string> = {};
const transcript: CliResult[] = [];

async function lifeboat(
  args: string[],
  options: { config?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  const file = options.config ?? config;
  const result = await runCli([...(file ? ["-c", file] : []), ...args], {
    env: { ...env, ...options.env },
    cwd: dir,
  });
  transcript.push(result);
  return result;
}

/** Non-zero documented exit, one error line with the code, no stack, no success on stdout. */
function expectError(result: CliResult, code: ErrorCode, exit: number): string {
  const why = describeRun(result);
  expect(result.code, why).toBe(exit);
  expect(ERROR_TABLE[code].exit, `the table documents exit ${exit} for ${code}`).toBe(exit);
  const lines = result.stderr.split("\n").filter((line) => line !== "");
  expect(lines, why).toHaveLength(1);
  expect(lines[0], why).toMatch(new RegExp(`^error\\[${code}\\]: \\S.* — \\S.*$`));
  expect(result.stderr, why).not.toMatch(STACK_FRAME);
  expect(result.stdout, why).not.toMatch(SUCCESS);
  return lines[0]!;
}

/** The same with --json: stdout is `{ ok: false, error: { code, message, hint } }`. */
function expectJsonError(result: CliResult, code: ErrorCode, exit: number) {
  expectError(result, code, exit);
  const doc = parseJson<{ ok: boolean; error: { code: string; message: string; hint: string } }>(
    result,
  );
  expect(doc.ok).toBe(false);
  expect(doc.error).toMatchObject({ code, message: expect.any(String), hint: expect.any(String) });
  return doc;
}

function yaml(repositories: string, extra = ""): string {
  return `repositories:\n${repositories}\nencryption:\n  recipients: [${recipient}]\n  identityFile: ${dir}/id.txt\nstorage: { retryAttempts: 2, retryBaseDelayMs: 20 }\n${extra}`;
}

function s3Repository(name: string, endpoint: string, more = ""): string {
  const s3 = s3TestConfig();
  return `  ${name}:\n    type: s3\n    endpoint: ${endpoint}\n    region: ${s3.region}\n    bucket: ${bucket}\n    prefix: lifeboat\n    pathStyle: true\n    credentials: { accessKeyId: "\${LB_S3_KEY}", secretAccessKey: "\${LB_S3_SECRET}" }\n${more}`;
}

const stored = (name: string) => path.join(dir, "repo", "data", id, `${name}.zst.age`);

async function damaged(file: string, damage: () => Promise<void>, check: () => Promise<void>) {
  const original = await readFile(file);
  try {
    await damage();
    await check();
  } finally {
    await writeFile(file, original);
  }
}

beforeAll(async () => {
  await ensureBuilt();
  dir = await mkdtemp(path.join(tmpdir(), "lifeboat-cli-"));
  bucket = await createTestBucket("cli-errors");
  const s3 = s3TestConfig();
  env = cliEnv(dir, { LB_S3_KEY: s3.accessKeyId, LB_S3_SECRET: s3.secretAccessKey });
  const key = await lifeboat(["--json", "key", "generate", "-o", `${dir}/id.txt`]);
  expect(key.code, describeRun(key)).toBe(0);
  recipient = parseJson<{ recipient: string }>(key).recipient;
  expect((await lifeboat(["key", "generate", "-o", `${dir}/other.txt`])).code).toBe(0);
  config = path.join(dir, "lifeboat.yaml");
  const local = `  local: { type: local, path: ${dir}/repo }\n`;
  await writeFile(config, yaml(local + s3Repository("offsite", s3.endpoint)));
  const init = await lifeboat(["repo", "init"]);
  expect(init.code, describeRun(init)).toBe(0);
  // ~600 KiB of text that zstd cannot shrink much: the stored object spans several age chunks.
  await writeFile(path.join(dir, "big.txt"), randomBytes(450 * 1024).toString("base64"));
  await writeFile(path.join(dir, "small.txt"), "hello\n");
  const backup = await lifeboat(["--json", "backup", "files", "big.txt", "small.txt"]);
  expect(backup.code, describeRun(backup)).toBe(0);
  id = parseJson<{ id: string }>(backup).id;
});

afterAll(async () => {
  if (bucket) await deleteTestBucket(bucket);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("integrity failures", () => {
  it("wrong identity: cat, restore and verify report DECRYPT_FAILED (exit 3)", async () => {
    const other = `${dir}/other.txt`;
    const cat = await lifeboat(["cat", id, "big.txt", "-r", "local", "-i", other]);
    expectError(cat, "DECRYPT_FAILED", 3);
    expect(cat.stdout).toBe("");
    expectJsonError(
      await lifeboat(["--json", "cat", id, "small.txt", "-i", other]),
      "DECRYPT_FAILED",
      3,
    );
    const out = path.join(dir, "out-wrong-key");
    expectError(
      await lifeboat(["restore", "files", id, "--to", out, "-i", other]),
      "DECRYPT_FAILED",
      3,
    );
    expect(await readdir(out)).toEqual([]);
    for (const repo of ["local", "offsite"]) {
      const verify = await lifeboat(["verify", id, "-r", repo, "-i", other]);
      expectError(verify, "VERIFY_FAILED", 3);
      expect(verify.stdout).toMatch(/^FAIL /);
      expect(verify.stdout).toContain("big.txt: DECRYPT_FAILED");
      const json = expectJsonError(
        await lifeboat(["--json", "verify", id, "-r", repo, "-i", other]),
        "VERIFY_FAILED",
        3,
      ) as unknown as { reports: { ok: boolean; objects: { code?: string }[] }[] };
      expect(json.reports.map((r) => r.ok)).toEqual([false]);
      expect(json.reports[0]!.objects.map((o) => o.code)).toEqual([
        "DECRYPT_FAILED",
        "DECRYPT_FAILED",
      ]);
    }
  });

  it("flipped byte: verify FAILs, cat and restore fail with OBJECT_CORRUPT, nothing restored", async () => {
    const file = stored("big.txt");
    const flip = async () => {
      const bytes = await readFile(file);
      const at = bytes.length >> 1;
      bytes[at] = bytes[at]! ^ 0x01;
      await writeFile(file, bytes);
    };
    await damaged(file, flip, async () => {
      for (const level of [[], ["--no-decrypt"]]) {
        const verify = await lifeboat(["verify", id, "-r", "local", ...level]);
        expectError(verify, "VERIFY_FAILED", 3);
        expect(verify.stdout).toMatch(/^FAIL .*\n\s+big\.txt: OBJECT_CORRUPT: /);
      }
      const cat = await lifeboat(["cat", id, "big.txt", "-r", "local"]);
      expectError(cat, "OBJECT_CORRUPT", 3);
      expect(cat.stdout.length).toBeLessThan(450 * 1024);
      const out = path.join(dir, "out-flipped");
      expectJsonError(
        await lifeboat(["--json", "restore", "files", id, "-r", "local", "--to", out]),
        "OBJECT_CORRUPT",
        3,
      );
      expect(await readdir(out)).toEqual([]);
    });
  });

  it("truncated object: verify FAILs, cat and restore fail with OBJECT_TRUNCATED", async () => {
    const file = stored("big.txt");
    await damaged(
      file,
      () => truncate(file, 200_000),
      async () => {
        const verify = await lifeboat(["--json", "verify", id, "-r", "local"]);
        const json = expectJsonError(verify, "VERIFY_FAILED", 3) as unknown as {
          reports: { objects: { name: string; code?: string }[] }[];
        };
        expect(json.reports[0]!.objects).toMatchObject([
          { name: "big.txt", code: "OBJECT_TRUNCATED" },
          { name: "small.txt" },
        ]);
        const cat = await lifeboat(["cat", id, "big.txt", "-r", "local"]);
        expectError(cat, "OBJECT_TRUNCATED", 3);
        expect(cat.stdout.length).toBeLessThan(450 * 1024);
        const out = path.join(dir, "out-truncated");
        expectError(
          await lifeboat(["restore", "files", id, "-r", "local", "--to", out]),
          "OBJECT_TRUNCATED",
          3,
        );
        expect(await readdir(out)).toEqual([]);
      },
    );
    // Repaired: the same commands succeed again (the failures above came from the damage).
    const verify = await lifeboat(["verify", id, "-r", "local"]);
    expect(verify.code, describeRun(verify)).toBe(0);
    expect(verify.stdout).toMatch(/^ok /);
  });

  it("missing manifest: show and restore refuse with BACKUP_INCOMPLETE, list says incomplete", async () => {
    const manifest = path.join(dir, "repo", "manifests", `${id}.json`);
    await damaged(
      manifest,
      () => rm(manifest),
      async () => {
        expectError(await lifeboat(["backups", "show", id, "-r", "local"]), "BACKUP_INCOMPLETE", 3);
        const out = path.join(dir, "out-incomplete");
        expectJsonError(
          await lifeboat(["--json", "restore", "files", id, "-r", "local", "--to", out]),
          "BACKUP_INCOMPLETE",
          3,
        );
        const list = await lifeboat(["--json", "backups", "list", "-r", "local"]);
        expect(list.code, describeRun(list)).toBe(0);
        expect(parseJson<{ id: string; status: string }[]>(list)).toMatchObject([
          { id, status: "incomplete" },
        ]);
        const table = await lifeboat(["backups", "list", "-r", "local"]);
        const row = table.stdout.split("\n").find((line) => line.startsWith(id));
        expect(row, describeRun(table)).toMatch(/\sincomplete\s/);
        expect(row).not.toMatch(/\scomplete\s/);
      },
    );
  });
});

describe("storage failures", () => {
  it("unreachable endpoint: STORAGE_UNREACHABLE (exit 4) within a few seconds", async () => {
    const unreachable = path.join(dir, "unreachable.yaml");
    await writeFile(unreachable, yaml(s3Repository("offsite", "http://127.0.0.1:1")));
    const runs: string[][] = [
      ["backups", "list"],
      ["backup", "files", "small.txt"],
      ["verify"],
      ["restore", "files", "latest", "--to", path.join(dir, "out-unreachable")],
    ];
    for (const args of runs) {
      const result = await lifeboat(args, { config: unreachable });
      expectError(result, "STORAGE_UNREACHABLE", 4);
      expect(result.ms, describeRun(result)).toBeLessThan(6000);
    }
    expectJsonError(
      await lifeboat(["--json", "backups", "list"], { config: unreachable }),
      "STORAGE_UNREACHABLE",
      4,
    );
  });

  it("unreachable offsite next to a working local repository: local copy taken, exit 4", async () => {
    const mixed = path.join(dir, "mixed.yaml");
    const local = `  local: { type: local, path: ${dir}/repo-mixed }\n`;
    await writeFile(mixed, yaml(local + s3Repository("offsite", "http://127.0.0.1:1")));
    const init = await lifeboat(["repo", "init"], { config: mixed });
    expect(init.code, describeRun(init)).toBe(4);
    const backup = await lifeboat(["--json", "backup", "files", "small.txt"], { config: mixed });
    expect(backup.code, describeRun(backup)).toBe(4);
    const doc = parseJson<{ ok: boolean; repositories: string[]; failed: { code: string }[] }>(
      backup,
    );
    expect(doc).toMatchObject({ ok: false, repositories: ["local"] });
    expect(doc.failed.map((f) => f.code)).toEqual(["STORAGE_UNREACHABLE"]);
    expect(backup.stderr.trim().split("\n")).toHaveLength(1);
    expect(backup.stderr).toMatch(/^error\[STORAGE_UNREACHABLE\]: .* — .*"offsite".*NOT in it/);
  });

  it("wrong credentials: STORAGE_AUTH or STORAGE_DENIED (exit 4), secret not echoed", async () => {
    const wrongSecret = { LB_S3_SECRET: WRONG_SECRET };
    const wrongKey = { LB_S3_KEY: "NOSUCHACCESSKEY" };
    for (const [args, override] of [
      [["backups", "list", "-r", "offsite"], wrongSecret],
      [["backup", "files", "small.txt", "-r", "offsite"], wrongSecret],
      [["--json", "backups", "list", "-r", "offsite"], wrongKey],
      [["restore", "files", id, "-r", "offsite", "--to", `${dir}/out-auth`], wrongKey],
    ] as const) {
      const result = await lifeboat([...args], { env: override });
      const code = /"code": "STORAGE_DENIED"|error\[STORAGE_DENIED\]/.test(
        result.stdout + result.stderr,
      )
        ? "STORAGE_DENIED"
        : "STORAGE_AUTH";
      if (args[0] === "--json") expectJsonError(result, code, 4);
      else expectError(result, code, 4);
    }
    // --verbose adds the cause chain, still without the secret (checked for every run below).
    const verbose = await lifeboat(["-v", "backups", "list", "-r", "offsite"], {
      env: wrongSecret,
    });
    expect(verbose.code).toBe(4);
    expect(verbose.stderr).toMatch(/^error\[STORAGE_(AUTH|DENIED)\]: /m);
  });
});

describe("configuration failures: exit 2, naming the file and the field", () => {
  const cases: [string, string, ErrorCode, string[]][] = [
    [
      "unknown field",
      `  local: { type: local, path: /tmp/x, colour: red }\n`,
      "CONFIG_INVALID",
      ["repositories.local", '"colour"'],
    ],
    [
      "missing bucket",
      `  offsite: { type: s3, endpoint: "http://127.0.0.1:1" }\n`,
      "CONFIG_INVALID",
      ["repositories.offsite.bucket", "required"],
    ],
    ["bad YAML", `  local: { type: local, path: /tmp/x\n`, "CONFIG_PARSE", []],
  ];
  it.each(cases)("%s", async (name, repositories, code, mentions) => {
    const file = path.join(dir, `bad-${name.replace(/\W+/g, "-")}.yaml`);
    await writeFile(file, yaml(repositories));
    const line = expectError(await lifeboat(["backups", "list"], { config: file }), code, 2);
    for (const text of [file, ...mentions]) expect(line).toContain(text);
    if (code === "CONFIG_PARSE") expect(line).toMatch(/\.yaml:\d+:\d+: /);
    expectJsonError(await lifeboat(["--json", "repo", "init"], { config: file }), code, 2);
  });

  it("missing environment variable", async () => {
    const { LB_S3_SECRET: _dropped, ...withoutSecret } = env;
    const result = await runCli(["-c", config, "backups", "list"], {
      env: withoutSecret,
      cwd: dir,
    });
    transcript.push(result);
    const line = expectError(result, "CONFIG_ENV_MISSING", 2);
    for (const text of [config, "repositories.offsite.credentials.secretAccessKey", "LB_S3_SECRET"])
      expect(line).toContain(text);
  });

  it("missing configuration file", async () => {
    const missing = path.join(dir, "nope.yaml");
    expect(
      expectError(await lifeboat(["backups", "list"], { config: missing }), "CONFIG_NOT_FOUND", 2),
    ).toContain(missing);
  });
});

describe("every run above", () => {
  it("printed no secret and no colour escape (stdout and stderr are not terminals)", () => {
    const s3Runs = transcript.filter((r) => r.args.includes("offsite") || r.args.includes("list"));
    expect(transcript.length).toBeGreaterThan(30);
    expect(s3Runs.length).toBeGreaterThan(5);
    const secrets = [s3TestConfig().secretAccessKey, WRONG_SECRET, "AGE-SECRET-KEY-1"];
    for (const result of transcript) {
      for (const secret of secrets) {
        expect(result.stdout, describeRun(result)).not.toContain(secret);
        expect(result.stderr, describeRun(result)).not.toContain(secret);
      }
      expect(result.stdout + result.stderr, describeRun(result)).not.toContain("\u001b[");
    }
  });
});
