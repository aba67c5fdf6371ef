import { LifeboatError, toLifeboatError } from "../errors.js";
import type { LifeboatConfig } from "../config/schema.js";
import { withClient, type PgConnection, describeConnection } from "../postgres/connection.js";
import { databaseExists, dropDatabase, renameDatabase } from "../postgres/restore.js";
import { appendRunQuietly } from "../repository/history.js";
import type { Manifest } from "../repository/format.js";
import type { Repository } from "../repository/repository.js";
import { verifyBackup } from "../repository/verify.js";
import type { AgeIdentity } from "../stream/age/index.js";
import type { ProgressListener } from "../stream/progress.js";
import { backupDatabase, dbDetails } from "./database.js";
import { startApplication, stopApplication, type HookResult } from "./hooks.js";
import { restoreIntoNewDatabase, type RestoreIntoResult } from "./restore-db.js";

export interface RestoreRequest {
  config: LifeboatConfig;
  databaseName: string;
  repository: Repository;
  manifest: Manifest;
  /** Repositories the emergency backup is written to (in-place only). */
  emergencyRepositories: Repository[];
  identities: readonly AgeIdentity[];
  target: PgConnection;
  mode: { kind: "into"; database: string } | { kind: "in-place"; keepOld: boolean };
  withGlobals: boolean;
  jobs: number;
  onProgress?: ProgressListener;
  onNote?: (message: string) => void;
}

export interface RestoreReport {
  ok: boolean;
  backup: { id: string; repository: string; takenAt: string; source?: string };
  target: { server: string; database: string };
  mode: "into" | "in-place";
  /** Data written after the backup's snapshot is not in the restored copy. */
  dataLossWindowMs: number;
  emergencyBackupId?: string;
  restore: RestoreIntoResult;
  hooks: HookResult[];
  previousDatabase?: string;
  durationMs: number;
}

export async function restoreDatabase(request: RestoreRequest): Promise<RestoreReport> {
  const started = new Date();
  try {
    const report =
      request.mode.kind === "into"
        ? await restoreInto(request, request.mode.database)
        : await restoreInPlace(request, request.mode.keepOld);
    await appendRunQuietly([request.repository], {
      operation: "restore",
      result: report.ok ? "ok" : "failed",
      startedAt: started,
      backupId: request.manifest.id,
      source: request.databaseName,
      details: {
        mode: report.mode,
        target: report.target,
        dataLossWindowMs: report.dataLossWindowMs,
        validation: report.restore.validation.ok,
        emergencyBackupId: report.emergencyBackupId,
      },
    });
    return report;
  } catch (error) {
    await appendRunQuietly([request.repository], {
      operation: "restore",
      result: "failed",
      startedAt: started,
      backupId: request.manifest.id,
      source: request.databaseName,
      error: toLifeboatError(error),
      details: { mode: request.mode.kind },
    });
    throw error;
  }
}

async function restoreInto(request: RestoreRequest, database: string): Promise<RestoreReport> {
  const started = Date.now();
  const result = await restoreIntoNewDatabase(intoOptions(request, database));
  return report(request, "into", result.database, result, [], started);
}

/**
 * Scenario 1, the safe way round: stop the app, take and verify an emergency backup of the live
 * database, restore into a staging database beside it and validate that, and only then swap
 * names. Until the swap the live database is untouched; after it the old one is kept until the
 * new one passed validation (and by default dropped only then — the emergency backup holds it).
 */
async function restoreInPlace(request: RestoreRequest, keepOld: boolean): Promise<RestoreReport> {
  const started = Date.now();
  const live = request.target.database;
  const stamp = new Date()
    .toISOString()
    .replace(/[-:.TZ]/g, "")
    .slice(0, 14);
  const staging = `${live}__lifeboat_restore_${stamp}`.slice(0, 63);
  const old = `${live}__lifeboat_old_${stamp}`.slice(0, 63);
  const hooks: HookResult[] = [];

  const exists = await withClient(
    request.target,
    (client) => databaseExists(client, live),
    "postgres",
  );
  if (!exists) {
    throw new LifeboatError(
      "USAGE",
      `database "${live}" does not exist on ${request.target.host}:${request.target.port}; nothing to replace`,
      {
        hint: `restore with --into ${live} instead`,
      },
    );
  }

  const stopped = await stopApplication(request.config);
  if (stopped) hooks.push(stopped);

  request.onNote?.(
    `taking an emergency backup of ${describeConnection(request.target)} before touching it`,
  );
  const emergency = await backupDatabase(
    request.config,
    request.databaseName,
    request.emergencyRepositories,
    {
      labels: { reason: "emergency-before-restore", restoring: request.manifest.id },
      connection: request.target,
    },
  );
  const emergencyId = emergency.id;
  const failWith = (error: unknown, where: string): never => {
    const failure = toLifeboatError(error);
    throw new LifeboatError(failure.code, `${where}: ${failure.message}`, {
      cause: error,
      hint: `database "${live}" is unchanged; emergency backup ${emergencyId} holds it; the application was left stopped`,
      data: { emergencyBackupId: emergencyId },
    });
  };
  for (const { repository, manifest } of emergency.manifests) {
    const level =
      request.identities.length > 0 || manifest.objects.every((o) => !o.encryption)
        ? "full"
        : "stored";
    const check = await verifyBackup(repository, manifest, {
      level,
      identities: request.identities,
    }).catch((error: unknown) => failWith(error, "verifying the emergency backup"));
    if (!check.ok)
      failWith(
        new LifeboatError(
          "OBJECT_CORRUPT",
          `emergency backup ${emergencyId} failed verification in "${repository.name}"`,
        ),
        "verifying the emergency backup",
      );
  }
  request.onNote?.(
    `emergency backup ${emergencyId} verified; restoring into staging database ${staging}`,
  );

  let result: RestoreIntoResult;
  try {
    result = await restoreIntoNewDatabase({ ...intoOptions(request, staging), direct: true });
  } catch (error) {
    return failWith(error, "restore failed before the switch");
  }
  if (!result.validation.ok) {
    await withClient(request.target, (client) => dropDatabase(client, staging), "postgres").catch(
      () => undefined,
    );
    failWith(
      new LifeboatError(
        "VALIDATION_FAILED",
        `the restored copy failed validation (${describeValidation(result)})`,
      ),
      "restore not switched in",
    );
  }

  try {
    await withClient(
      request.target,
      async (client) => {
        await renameDatabase(client, live, old);
        try {
          await renameDatabase(client, staging, live);
        } catch (error) {
          await renameDatabase(client, old, live);
          throw error;
        }
      },
      "postgres",
    );
  } catch (error) {
    return failWith(error, "switching the restored database in");
  }
  if (!keepOld) await withClient(request.target, (client) => dropDatabase(client, old), "postgres");

  hooks.push(...(await startApplication(request.config)));
  const final = report(request, "in-place", live, result, hooks, started);
  return {
    ...final,
    emergencyBackupId: emergencyId,
    ...(keepOld ? { previousDatabase: old } : {}),
  };
}

function intoOptions(request: RestoreRequest, database: string) {
  const db = request.config.databases[request.databaseName];
  return {
    repository: request.repository,
    manifest: request.manifest,
    identities: request.identities,
    target: request.target,
    database,
    jobs: request.jobs,
    withGlobals: request.withGlobals,
    checks: db?.checks ?? [],
    ...(db?.binDir ? { binDir: db.binDir } : {}),
    ...(request.onProgress ? { onProgress: request.onProgress } : {}),
    ...(request.onNote ? { onNote: request.onNote } : {}),
  };
}

function report(
  request: RestoreRequest,
  mode: "into" | "in-place",
  database: string,
  result: RestoreIntoResult,
  hooks: HookResult[],
  started: number,
): RestoreReport {
  const details = dbDetails(request.manifest.details);
  const takenAt = details.snapshotTime ?? request.manifest.startedAt;
  return {
    ok: result.validation.ok && hooks.every((h) => h.ok),
    backup: {
      id: request.manifest.id,
      repository: request.repository.name,
      takenAt,
      ...(request.manifest.source ? { source: request.manifest.source } : {}),
    },
    target: { server: `${request.target.host}:${request.target.port}`, database },
    mode,
    dataLossWindowMs: Date.now() - Date.parse(takenAt),
    restore: result,
    hooks,
    durationMs: Date.now() - started,
  };
}

export function describeValidation(result: RestoreIntoResult): string {
  const bad = [
    ...result.validation.tables.filter((t) => !t.ok).map((t) => `${t.table}: ${t.problem}`),
    ...result.validation.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.problem}`),
  ];
  return bad.length === 0 ? "all checks passed" : bad.join("; ");
}
