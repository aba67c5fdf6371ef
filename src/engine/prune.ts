import type { RetentionConfig } from "../config/schema.js";
import { dataPrefix, manifestCopyKey, manifestKey } from "../repository/format.js";
import { appendRunQuietly, readRuns } from "../repository/history.js";
import { withLock } from "../repository/lock.js";
import type { Repository } from "../repository/repository.js";
import {
  planRetention,
  type RetentionCandidate,
  type RetentionPlan,
} from "../repository/retention.js";
import { mapLimited } from "./catalog.js";

export interface PruneResult {
  repository: string;
  dryRun: boolean;
  plan: RetentionPlan;
  removedBytes: number;
}

/** Candidates from manifests; "verified" from the run history (verify or restore test passed). */
export async function retentionCandidates(
  repository: Repository,
): Promise<(RetentionCandidate & { bytes: number })[]> {
  const verified = new Set(
    (await readRuns(repository))
      .filter(
        (run) =>
          run.result === "ok" &&
          (run.operation === "verify" || run.operation === "restore-test") &&
          run.backupId,
      )
      .map((run) => run.backupId as string),
  );
  const ids = await repository.listBackupIds();
  const manifests = await mapLimited(ids, 8, (id) =>
    repository.readManifest(id).catch(() => undefined),
  );
  return manifests
    .filter((m): m is NonNullable<typeof m> => m !== undefined)
    .map((m) => ({
      id: m.id,
      kind: m.kind,
      ...(m.source ? { source: m.source } : {}),
      time: new Date(m.startedAt),
      verified: verified.has(m.id),
      bytes: m.totals.storedBytes,
    }));
}

/**
 * Plan, then apply under an exclusive lock with a fresh plan (what --dry-run showed may be stale).
 * A backup is removed manifest first: from that moment it is no longer listed as restorable, and
 * an interruption leaves only data that prune-incomplete recognises as a leftover.
 */
export async function prune(
  repository: Repository,
  policy: RetentionConfig,
  options: { dryRun: boolean; now?: Date },
): Promise<PruneResult> {
  const now = options.now ?? new Date();
  const plan = async () => {
    const candidates = await retentionCandidates(repository);
    const result = planRetention(candidates, policy, now);
    const sizes = new Map(candidates.map((c) => [c.id, c.bytes]));
    return { result, bytes: result.remove.reduce((sum, d) => sum + (sizes.get(d.id) ?? 0), 0) };
  };
  if (options.dryRun) {
    const { result, bytes } = await plan();
    return { repository: repository.name, dryRun: true, plan: result, removedBytes: bytes };
  }
  const started = new Date();
  const outcome = await withLock(
    repository.storage,
    { exclusive: true, operation: "prune" },
    async () => {
      const { result, bytes } = await plan();
      for (const decision of result.remove) {
        await repository.storage.delete(manifestKey(decision.id));
        await repository.storage.delete(manifestCopyKey(decision.id));
        const keys: string[] = [];
        for await (const info of repository.storage.list(dataPrefix(decision.id)))
          keys.push(info.key);
        await mapLimited(keys, 8, (key) => repository.storage.delete(key));
      }
      return { repository: repository.name, dryRun: false, plan: result, removedBytes: bytes };
    },
  );
  await appendRunQuietly([repository], {
    operation: "prune",
    result: "ok",
    startedAt: started,
    bytes: outcome.removedBytes,
    details: { removed: outcome.plan.remove.map((d) => d.id), kept: outcome.plan.keep.length },
  });
  return outcome;
}
