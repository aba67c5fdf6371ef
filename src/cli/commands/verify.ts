import type { Command } from "commander";
import "../../engine/db-verify.js";
import { LifeboatError, formatErrorLine, toLifeboatError } from "../../errors.js";
import { resolveBackup } from "../../engine/catalog.js";
import { restoreTest, type RestoreTestResult } from "../../engine/restore-test.js";
import { verifyBackup, type VerifyLevel, type VerifyReport } from "../../repository/verify.js";
import type { Repository } from "../../repository/repository.js";
import { appendRunQuietly } from "../../repository/history.js";
import { action } from "../context.js";
import { formatDuration } from "../output.js";
import { collect } from "./repo.js";

interface VerifyOptions {
  repo: string[];
  all?: boolean;
  quick?: boolean;
  noDecrypt?: boolean;
  decrypt?: boolean;
  identity?: string;
  restoreTest?: boolean;
}

export function registerVerifyCommand(program: Command): void {
  program
    .command("verify")
    .description(
      "re-read backups and check every checksum; decrypt, decompress and run kind-specific checks",
    )
    .argument("[id]", "backup id or `latest` (default: latest)")
    .option("--all", "verify every backup")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("--quick", "only check that objects exist with the recorded sizes")
    .option("--no-decrypt", "check stored bytes only (needs no private key)")
    .option("-i, --identity <file>", "identity file (default: encryption.identityFile)")
    .option(
      "--restore-test",
      "also restore db backups into a scratch database, validate, and drop it",
    )
    .action(
      action(
        async (context, id: string | undefined, options: VerifyOptions) => {
          const repositories = await context.repositories(options.repo);
          const level: VerifyLevel = options.quick
            ? "quick"
            : options.decrypt === false
              ? "stored"
              : "full";
          const identities = level === "full" ? await context.identities(options.identity) : [];
          const reports: VerifyReport[] = [];
          for (const repository of repositories) {
            for (const backupId of await selectIds(
              repository,
              options.all ? "all" : (id ?? "latest"),
            )) {
              const report = await verifyOne(repository, backupId, level, identities);
              if (report) reports.push(report);
            }
          }
          if (reports.length === 0)
            throw new LifeboatError(
              "BACKUP_NOT_FOUND",
              `no backup ${options.all ? "" : (id ?? "")} to verify`.replace("  ", " "),
            );
          const restoreTests: RestoreTestResult[] = [];
          if (options.restoreTest) {
            const { config } = await context.config();
            for (const report of reports.filter((r) => r.ok)) {
              const repository = repositories.find((r) => r.name === report.repository)!;
              const { manifest } = await resolveBackup([repository], report.backupId);
              if (manifest.kind !== "db") continue;
              const result = await restoreTest(config, repository, manifest, identities);
              restoreTests.push(result);
              if (!result.ok) report.ok = false;
              report.extra.push({
                name: "restore test",
                key: result.scratchDatabase,
                ok: result.ok,
                ...(result.ok
                  ? {}
                  : {
                      code: "VALIDATION_FAILED" as const,
                      problem: result.error?.message ?? "validation failed",
                    }),
              });
            }
          }
          for (const report of reports) {
            const repository = repositories.find((r) => r.name === report.repository);
            if (!repository || report.level === "quick") continue;
            await appendRunQuietly([repository], {
              operation: "verify",
              result: report.ok ? "ok" : "failed",
              startedAt: new Date(Date.now() - report.durationMs),
              backupId: report.backupId,
              details: {
                level: report.level,
                failed: [...report.objects, ...report.extra]
                  .filter((o) => !o.ok)
                  .map((o) => o.name),
              },
            });
          }
          const failed = reports.filter((r) => !r.ok);
          const failure =
            failed.length > 0
              ? new LifeboatError(
                  "VERIFY_FAILED",
                  `${failed.length} of ${reports.length} backup(s) failed verification`,
                )
              : undefined;
          const error = failure && {
            code: failure.code,
            message: failure.message,
            hint: failure.hint,
          };
          const c = context.out.color;
          context.out.result(
            { ok: !failure, ...(error ? { error } : {}), reports, restoreTests },
            () =>
              reports.flatMap((r) => [
                `${r.ok ? c.green("ok  ") : c.red("FAIL")} ${r.backupId} in "${r.repository}" (${r.level}, ${formatDuration(r.durationMs)})`,
                ...[...r.objects, ...r.extra]
                  .filter((o) => !o.ok)
                  .map((o) => `     ${o.name}: ${o.code}: ${o.problem}`),
              ]),
          );
          if (failure) {
            context.out.note(formatErrorLine(failure));
            process.exitCode = failure.exitStatus;
          }
        },
        { notify: "verify" },
      ),
    );
}

async function selectIds(repository: Repository, which: string): Promise<string[]> {
  if (which === "all") return repository.listBackupIds();
  if (which === "latest") return (await repository.listBackupIds()).slice(0, 1);
  return [which];
}

async function verifyOne(
  repository: Repository,
  backupId: string,
  level: VerifyLevel,
  identities: Parameters<typeof verifyBackup>[2]["identities"],
): Promise<VerifyReport | undefined> {
  try {
    const { manifest } = await resolveBackup([repository], backupId);
    return await verifyBackup(repository, manifest, { level, identities: identities ?? [] });
  } catch (error) {
    const failure = toLifeboatError(error);
    if (failure.code === "BACKUP_NOT_FOUND") return undefined;
    if (
      failure.code === "STORAGE_UNREACHABLE" ||
      failure.code === "STORAGE_AUTH" ||
      failure.code === "KEY_NOT_FOUND"
    )
      throw failure;
    return {
      backupId,
      repository: repository.name,
      level,
      ok: false,
      objects: [
        {
          name: "manifest",
          key: backupId,
          ok: false,
          code: failure.code,
          problem: failure.message,
        },
      ],
      extra: [],
      durationMs: 0,
    };
  }
}
