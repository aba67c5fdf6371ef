import { LifeboatError, toLifeboatError } from "../errors.js";
import type { LifeboatConfig } from "../config/schema.js";
import { connectionFromConfig, withClient } from "../postgres/connection.js";
import { dropDatabase } from "../postgres/restore.js";
import { appendRunQuietly } from "../repository/history.js";
import type { Manifest } from "../repository/format.js";
import type { Repository } from "../repository/repository.js";
import type { AgeIdentity } from "../stream/age/index.js";
import { restoreIntoNewDatabase, type RestoreIntoResult } from "./restore-db.js";

export interface RestoreTestResult {
  ok: boolean;
  backupId: string;
  scratchDatabase: string;
  restoreMs: number;
  result?: RestoreIntoResult;
  error?: { code: string; message: string };
}

/**
 * The monthly restore test, on demand: restore into a scratch database on the configured server,
 * validate, drop it. Recorded in the run history, which checks read ("last restore test passed").
 */
export async function restoreTest(
  config: LifeboatConfig,
  repository: Repository,
  manifest: Manifest,
  identities: readonly AgeIdentity[],
): Promise<RestoreTestResult> {
  const source = manifest.source;
  const database = source ? config.databases[source] : undefined;
  if (!source || !database) {
    throw new LifeboatError(
      "USAGE",
      `backup ${manifest.id} is of "${source ?? "?"}", which is not a configured database`,
      {
        hint: "restore tests restore onto the configured server of the backup's database",
      },
    );
  }
  const target = connectionFromConfig(database);
  const scratch = `lifeboat_restore_test_${Date.now().toString(36)}`;
  const started = new Date();
  let outcome: RestoreTestResult;
  try {
    const result = await restoreIntoNewDatabase({
      direct: true,
      repository,
      manifest,
      identities,
      target,
      database: scratch,
      jobs: database.jobs,
      withGlobals: false,
      checks: database.checks,
      ...(database.binDir ? { binDir: database.binDir } : {}),
    });
    outcome = {
      ok: result.validation.ok,
      backupId: manifest.id,
      scratchDatabase: scratch,
      restoreMs: result.restoreMs,
      result,
    };
  } catch (error) {
    const failure = toLifeboatError(error);
    outcome = {
      ok: false,
      backupId: manifest.id,
      scratchDatabase: scratch,
      restoreMs: Date.now() - started.getTime(),
      error: { code: failure.code, message: failure.message },
    };
  } finally {
    await withClient(target, (client) => dropDatabase(client, scratch), "postgres").catch(
      () => undefined,
    );
  }
  await appendRunQuietly([repository], {
    operation: "restore-test",
    result: outcome.ok ? "ok" : "failed",
    startedAt: started,
    backupId: manifest.id,
    source,
    details: {
      restoreMs: outcome.restoreMs,
      validation: outcome.result?.validation.ok ?? false,
      ...(outcome.error ? { error: outcome.error } : {}),
    },
  });
  return outcome;
}
