import { durationSeconds } from "../config/schema.js";
import { withLock } from "../repository/lock.js";
import type { Repository } from "../repository/repository.js";
import type { BaseBackupPosition } from "./chain.js";
import type { WalContext } from "./config.js";
import { baseBackups, walInventory } from "./inventory.js";
import { lsnSegment, parseWalName, segmentNumber } from "./layout.js";
import { readWalRecord } from "./push.js";

/**
 * WAL retention, as a pure plan plus an apply step. The rule: a WAL file is kept when
 *   - it is a timeline history file (tiny, and needed to follow any timeline), or
 *   - it was archived within the window (`wal.keep`, 7 days by default), or
 *   - it lies at or after the start of the oldest retained base backup — on any timeline —
 *     so the chain from every retained base backup to the newest WAL stays whole.
 * With no retained base backup nothing is deleted: the WAL would be all that is left.
 * Also removed: data objects no record points at (uploads that never committed, replaced
 * partial segments) once a day old, and partial segments superseded by their complete segment.
 */

export interface WalFileFacts {
  name: string;
  recordKey?: string;
  /** Data objects stored for this name; `current` is the one the record points at. */
  dataKeys: { key: string; size: number; modified: Date; current: boolean }[];
  archivedAt?: Date;
}

export interface WalRetentionInput {
  now: Date;
  keepSeconds: number;
  segmentSize: number;
  retainedBases: readonly BaseBackupPosition[];
  files: readonly WalFileFacts[];
}

export interface WalDeletion {
  name: string;
  /** Record first (uncommits), then data. */
  keys: string[];
  bytes: number;
  reason: string;
}

export interface WalRetentionPlan {
  keptFiles: number;
  deletions: WalDeletion[];
  bytes: number;
  /** First segment number kept because a retained base backup needs it. */
  cutoffSegment?: number;
  anchor?: string;
  notes: string[];
}

const ORPHAN_GRACE_MS = 24 * 3600_000;
const PARTIAL_GRACE_MS = 3600_000;

export function planWalRetention(input: WalRetentionInput): WalRetentionPlan {
  const notes: string[] = [];
  const windowStart = input.now.getTime() - input.keepSeconds * 1000;
  const anchor = [...input.retainedBases].sort((a, b) => (a.startLsn < b.startLsn ? -1 : 1))[0];
  const cutoff = anchor ? lsnSegment(anchor.startLsn, input.segmentSize) : undefined;
  if (!anchor) notes.push("no retained base backup: keeping all WAL");
  const complete = new Set(
    input.files
      .filter((f) => f.recordKey && parseWalName(f.name)?.kind === "segment")
      .map((f) => f.name),
  );
  const deletions: WalDeletion[] = [];
  let keptFiles = 0;
  for (const file of input.files) {
    const name = parseWalName(file.name);
    if (!name) continue;
    // A record whose data object is unknown (unreadable record) protects all of them.
    const known = !file.recordKey || file.dataKeys.some((d) => d.current);
    const orphans = known
      ? file.dataKeys.filter(
          (d) => !d.current && input.now.getTime() - d.modified.getTime() > ORPHAN_GRACE_MS,
        )
      : [];
    const deleteWhole = (reason: string) =>
      deletions.push({
        name: file.name,
        keys: [...(file.recordKey ? [file.recordKey] : []), ...file.dataKeys.map((d) => d.key)],
        bytes: file.dataKeys.reduce((sum, d) => sum + d.size, 0),
        reason,
      });
    if (!file.recordKey) {
      if (orphans.length > 0 && orphans.length === file.dataKeys.length)
        deleteWhole("upload never committed");
      continue;
    }
    const archivedAt = file.archivedAt?.getTime() ?? input.now.getTime();
    if (
      name.kind === "partial" &&
      complete.has(name.segment!) &&
      input.now.getTime() - archivedAt > PARTIAL_GRACE_MS
    ) {
      deleteWhole("superseded by the complete segment");
      continue;
    }
    const position = name.segment ? segmentNumber(name.segment, input.segmentSize) : undefined;
    const keep =
      name.kind === "history" ||
      cutoff === undefined ||
      archivedAt >= windowStart ||
      (position !== undefined && position >= cutoff);
    if (!keep) {
      deleteWhole("older than the window and before the oldest retained base backup");
      continue;
    }
    keptFiles++;
    if (orphans.length > 0) {
      deletions.push({
        name: file.name,
        keys: orphans.map((o) => o.key),
        bytes: orphans.reduce((sum, o) => sum + o.size, 0),
        reason: "data object no record points at",
      });
    }
  }
  return {
    keptFiles,
    deletions,
    bytes: deletions.reduce((sum, d) => sum + d.bytes, 0),
    ...(cutoff !== undefined ? { cutoffSegment: cutoff, anchor: anchor!.id } : {}),
    notes,
  };
}

/** Builds the plan for one repository: every committed base backup of the source is retained. */
export async function walRetentionPlanFor(
  repository: Repository,
  context: WalContext,
  now = new Date(),
): Promise<WalRetentionPlan & { repository: string }> {
  const [inventory, bases] = await Promise.all([
    walInventory(repository),
    baseBackups(repository, context.databaseName),
  ]);
  const files: WalFileFacts[] = [];
  for (const entry of inventory.files.values()) {
    let current: string | undefined;
    if (entry.recordKey && entry.dataKeys.length > 1) {
      current = (await readWalRecord(repository, entry.name).catch(() => undefined))?.key;
    }
    files.push({
      name: entry.name.name,
      ...(entry.recordKey ? { recordKey: entry.recordKey } : {}),
      ...(entry.archivedAt ? { archivedAt: entry.archivedAt } : {}),
      dataKeys: entry.dataKeys.map((d) => ({
        ...d,
        // With one data object the record points at it; with several, the record says which.
        current: entry.dataKeys.length === 1 ? Boolean(entry.recordKey) : d.key === current,
      })),
    });
  }
  const plan = planWalRetention({
    now,
    keepSeconds: durationSeconds(context.wal.keep),
    segmentSize: bases.at(-1)?.segmentSize ?? inventory.segmentSize,
    retainedBases: bases,
    files,
  });
  return { repository: repository.name, ...plan };
}

/** Re-plans under an exclusive lock (nothing else may write meanwhile), then deletes. */
export async function pruneWal(
  repository: Repository,
  context: WalContext,
): Promise<WalRetentionPlan & { repository: string }> {
  return withLock(repository.storage, { exclusive: true, operation: "wal prune" }, async () => {
    const plan = await walRetentionPlanFor(repository, context);
    for (const deletion of plan.deletions) {
      for (const key of deletion.keys) await repository.storage.delete(key);
    }
    return plan;
  });
}
