import { isLifeboatError } from "../errors.js";
import type { Manifest } from "../repository/format.js";
import type { Repository } from "../repository/repository.js";
import { readSmall } from "../storage/text.js";
import { mapLimited } from "../engine/catalog.js";
import type { BaseBackupPosition } from "./chain.js";
import {
  DEFAULT_SEGMENT_SIZE,
  RESTORE_POINT_PREFIX,
  WAL_PREFIX,
  parseLsn,
  parseWalKey,
  type HistoryEntry,
  type WalName,
} from "./layout.js";
import { readWalRecord } from "./push.js";

/**
 * What a repository holds of one cluster's WAL and base backups, from one listing of wal/ plus
 * the base backup manifests and the (few) history records. Status, retention and restore
 * planning all start here.
 */

export interface WalFileEntry {
  name: WalName;
  recordKey?: string;
  /** When the record was written (storage modification time): when the file was archived. */
  archivedAt?: Date;
  dataKeys: { key: string; size: number; modified: Date }[];
}

export interface WalInventory {
  files: Map<string, WalFileEntry>;
  restorePoints: string[];
  histories: Map<number, HistoryEntry[]>;
  segmentSize: number;
}

export async function walInventory(repository: Repository): Promise<WalInventory> {
  const files = new Map<string, WalFileEntry>();
  const restorePoints: string[] = [];
  for await (const info of repository.storage.list(WAL_PREFIX)) {
    if (info.key.startsWith(RESTORE_POINT_PREFIX)) {
      restorePoints.push(info.key);
      continue;
    }
    const parsed = parseWalKey(info.key);
    if (!parsed) continue;
    let entry = files.get(parsed.name.name);
    if (!entry) files.set(parsed.name.name, (entry = { name: parsed.name, dataKeys: [] }));
    if (parsed.role === "record") {
      entry.recordKey = info.key;
      entry.archivedAt = info.modified;
    } else {
      entry.dataKeys.push({ key: info.key, size: info.size, modified: info.modified });
    }
  }
  const histories = new Map<number, HistoryEntry[]>();
  let segmentSize: number | undefined;
  for (const entry of files.values()) {
    if (entry.name.kind !== "history" || !entry.recordKey) continue;
    const record = await readWalRecord(repository, entry.name).catch(() => undefined);
    if (record?.history) {
      histories.set(
        entry.name.timeline,
        record.history.map((h) => ({ ...h, switchLsn: parseLsn(h.switchLsn) })),
      );
    }
  }
  // Segment size is a property of the cluster; the newest segment's record tells it.
  const newest = [...files.values()]
    .filter((e) => e.name.kind === "segment" && e.recordKey)
    .sort((a, b) => (a.name.name < b.name.name ? 1 : -1))[0];
  if (newest)
    segmentSize = (await readWalRecord(repository, newest.name).catch(() => undefined))
      ?.segmentSize;
  return { files, restorePoints, histories, segmentSize: segmentSize ?? DEFAULT_SEGMENT_SIZE };
}

/** Names of committed files (those with a record). */
export function committedNames(inventory: WalInventory): string[] {
  return [...inventory.files.values()].filter((e) => e.recordKey).map((e) => e.name.name);
}

export interface BaseBackupInfo extends BaseBackupPosition {
  manifest: Manifest;
  repository: Repository;
  systemIdentifier?: string;
  segmentSize?: number;
}

/** Committed base backups of `source` (all sources when undefined), oldest first. */
export async function baseBackups(
  repository: Repository,
  source?: string,
): Promise<BaseBackupInfo[]> {
  const ids = (await repository.listBackupIds()).filter((id) => id.includes("-base-"));
  const manifests = await mapLimited(ids, 8, (id) =>
    repository.readManifest(id).catch((error: unknown) => {
      if (isLifeboatError(error, "STORAGE_UNREACHABLE") || isLifeboatError(error, "STORAGE_AUTH"))
        throw error;
      return undefined;
    }),
  );
  const bases: BaseBackupInfo[] = [];
  for (const manifest of manifests) {
    if (!manifest || manifest.kind !== "base" || (source && manifest.source !== source)) continue;
    const position = basePosition(manifest);
    if (position) bases.push({ ...position, manifest, repository });
  }
  return bases.sort((a, b) => (a.startLsn < b.startLsn ? -1 : a.startLsn > b.startLsn ? 1 : 0));
}

export function basePosition(
  manifest: Manifest,
): (BaseBackupPosition & { systemIdentifier?: string; segmentSize?: number }) | undefined {
  const d = manifest.details as Record<string, unknown>;
  if (typeof d.startLsn !== "string" || typeof d.stopLsn !== "string") return undefined;
  return {
    id: manifest.id,
    timeline: Number(d.timeline ?? 1),
    startLsn: parseLsn(d.startLsn),
    stopLsn: parseLsn(d.stopLsn),
    stopTime: typeof d.stopTime === "string" ? d.stopTime : manifest.finishedAt,
    walIncluded: d.walIncluded === true,
    ...(typeof d.systemIdentifier === "string" ? { systemIdentifier: d.systemIdentifier } : {}),
    ...(typeof d.segmentSize === "number" ? { segmentSize: d.segmentSize } : {}),
  };
}

export interface RestorePointRecord {
  format: "lifeboat-restore-point";
  version: number;
  name: string;
  lsn: string;
  timeline: number;
  createdAt: string;
  database: string;
}

export async function readRestorePoint(
  repository: Repository,
  key: string,
): Promise<RestorePointRecord | undefined> {
  try {
    return JSON.parse(await readSmall(repository.storage, key, 1 << 16)) as RestorePointRecord;
  } catch {
    return undefined;
  }
}
