import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { lifeboat } from "../helpers/lifeboat.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe("lifeboat demo (the README's main-job command)", () => {
  it("backs up, verifies, restores and proves the copy equal, with no configuration at all", async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), "lifeboat-demo-test-"));
    dirs.push(cwd);
    const run = await lifeboat(cwd, ["--json", "demo"]);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as {
      ok: boolean;
      backup: { plainBytes: number; storedBytes: number };
      verify: { ok: boolean; checks: string[] };
      restore: { validation: { ok: boolean; tables: unknown[]; checks: { ok: boolean }[] } };
      contentsMatch: { table: string; ok: boolean }[];
    };
    expect(report.ok).toBe(true);
    expect(report.backup.storedBytes).toBeLessThan(report.backup.plainBytes);
    expect(report.verify.checks).toContain("pg_restore --list: ok");
    expect(report.restore.validation.tables).toHaveLength(5);
    expect(report.restore.validation.checks.every((c) => c.ok)).toBe(true);
    expect(report.contentsMatch.map((c) => c.ok)).toEqual([true, true, true, true, true, true]);
    expect(await readdir(cwd)).toEqual([]);
  });

  it("keeps the repository and identity with --keep, restorable by the CLI afterwards", async () => {
    const keep = await mkdtemp(path.join(tmpdir(), "lifeboat-demo-keep-"));
    dirs.push(keep);
    const run = await lifeboat(keep, ["demo", "--keep", keep]);
    expect(run.code, run.stderr).toBe(0);
    expect((await readdir(keep)).sort()).toEqual(["identity.txt", "repository"]);
    expect((await readdir(path.join(keep, "repository"))).sort()).toEqual(
      expect.arrayContaining(["data", "lifeboat.json", "manifests"]),
    );
  });
});
