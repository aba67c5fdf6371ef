import { Readable } from "node:stream";
import { createInterface } from "node:readline";
import { LifeboatError } from "../errors.js";
import { listBackups, resolveBackup, type ResolvedBackup } from "../engine/catalog.js";
import { canonicalJson, sha256Hex } from "../repository/canonical.js";
import type { Repository } from "../repository/repository.js";
import { runBackup, type CommittedBackup } from "../repository/writer.js";
import type { EncodeSettings } from "../stream/encode.js";
import type { AgeIdentity } from "../stream/age/index.js";
import type { BucketTarget } from "./client.js";
import { listVersions } from "./list.js";
import { parseSettings, readBucketSettings, type BucketSettings } from "./settings.js";

export const SNAPSHOT_KIND = "bucket-snapshot";
export const SETTINGS_KIND = "bucket-settings";
export const OBJECTS_NAME = "objects.jsonl";
export const SETTINGS_NAME = "settings.json";

/** One line of objects.jsonl: the entry that was current for a key when the snapshot was taken. */
export interface SnapshotLine {
  key: string;
  versionId: string;
  size: number;
  etag: string;
  lastModified: string;
  isLatest: true;
  /** The key was deleted (its newest entry is a delete marker). */
  deleteMarker?: true;
}

export interface SnapshotDetails {
  bucket: string;
  location: string;
  /** When the listing started: the point in time the snapshot stands for. */
  takenAt: string;
  listedUntil: string;
  keys: number;
  deleteMarkers: number;
  bytes: number;
  versioning: string;
  settingsSha256: string;
}

/** sha256 of the settings without their capture time: equal when nothing changed. */
export function settingsDigest(settings: BucketSettings): string {
  const { capturedAt: _time, ...rest } = settings;
  return sha256Hex(canonicalJson(rest));
}

function settingsBody(settings: BucketSettings): Readable {
  return Readable.from([Buffer.from(`${JSON.stringify(settings, null, 2)}\n`)]);
}

/** objects.jsonl, in 64 KiB chunks, straight from the version listing (never whole in memory). */
async function* snapshotLines(
  target: BucketTarget,
  counts: { keys: number; deleteMarkers: number; bytes: number },
): AsyncGenerator<Buffer> {
  let pending = "";
  for await (const entry of listVersions(target)) {
    if (!entry.isLatest) continue;
    const line: SnapshotLine = {
      key: entry.key,
      versionId: entry.versionId,
      size: entry.size,
      etag: entry.etag,
      lastModified: entry.lastModified,
      isLatest: true,
      ...(entry.deleteMarker ? { deleteMarker: true as const } : {}),
    };
    if (entry.deleteMarker) counts.deleteMarkers++;
    else {
      counts.keys++;
      counts.bytes += entry.size;
    }
    pending += `${JSON.stringify(line)}\n`;
    if (pending.length >= 65_536) {
      yield Buffer.from(pending);
      pending = "";
    }
  }
  if (pending) yield Buffer.from(pending);
}

/**
 * Records the bucket as it is now — every key's current version id, size and ETag, plus its
 * settings — as a backup of kind `bucket-snapshot`. Only the listing is read, never the objects.
 */
export async function snapshotBucket(
  repositories: Repository[],
  encoding: EncodeSettings,
  target: BucketTarget,
  labels: Record<string, string> = {},
): Promise<{ committed: CommittedBackup; details: SnapshotDetails }> {
  const takenAt = new Date();
  const settings = await readBucketSettings(target, takenAt); // fails fast on a missing bucket
  const counts = { keys: 0, deleteMarkers: 0, bytes: 0 };
  let details: SnapshotDetails | undefined;
  const committed = await runBackup(
    repositories,
    {
      kind: SNAPSHOT_KIND,
      source: target.bucket,
      labels,
      encoding,
      operation: `bucket snapshot ${target.bucket}`,
    },
    async (session) => {
      await session.addObject(OBJECTS_NAME, Readable.from(snapshotLines(target, counts)), {
        role: "listing",
        contentType: "application/x-ndjson",
      });
      await session.addObject(SETTINGS_NAME, settingsBody(settings), {
        role: "settings",
        contentType: "application/json",
      });
      details = {
        bucket: target.bucket,
        location: target.location,
        takenAt: takenAt.toISOString(),
        listedUntil: new Date().toISOString(),
        ...counts,
        versioning: settings.versioning,
        settingsSha256: settingsDigest(settings),
      };
      return { ...details };
    },
  );
  return { committed, details: details! };
}

/**
 * Saves the bucket's settings as a `bucket-settings` backup unless the newest saved copy (a
 * snapshot's or an earlier save's) already has the same digest — compared from manifests, so no
 * key is needed.
 */
export async function saveSettingsIfChanged(
  repositories: Repository[],
  encoding: EncodeSettings,
  target: BucketTarget,
): Promise<{ id: string; changed: boolean }> {
  const settings = await readBucketSettings(target);
  const digest = settingsDigest(settings);
  const latest = await newestSaved(repositories, target.bucket);
  if (latest && latest.manifest.details.settingsSha256 === digest) {
    return { id: latest.manifest.id, changed: false };
  }
  const committed = await runBackup(
    repositories,
    {
      kind: SETTINGS_KIND,
      source: target.bucket,
      encoding,
      operation: `save settings of ${target.bucket}`,
    },
    async (session) => {
      await session.addObject(SETTINGS_NAME, settingsBody(settings), {
        role: "settings",
        contentType: "application/json",
      });
      return { bucket: target.bucket, location: target.location, settingsSha256: digest };
    },
  );
  return { id: committed.id, changed: true };
}

/** Newest complete snapshot or settings backup of the bucket (snapshots only with `kinds`). */
async function newestSaved(
  repositories: Repository[],
  bucket: string,
  kinds: string[] = [SNAPSHOT_KIND, SETTINGS_KIND],
  at?: Date,
): Promise<ResolvedBackup | undefined> {
  const all = await listBackups(repositories, { source: bucket, includeIncomplete: false });
  for (const summary of all) {
    if (summary.status !== "complete" || !kinds.includes(summary.kind ?? "")) continue;
    if (summary.source !== bucket) continue;
    const resolved = await resolveBackup(repositories, summary.id).catch(() => undefined);
    if (!resolved) continue;
    const takenAt = String(resolved.manifest.details.takenAt ?? resolved.manifest.startedAt);
    if (at && Date.parse(takenAt) > at.getTime()) continue;
    return resolved;
  }
  return undefined;
}

/** A snapshot by id, or the newest one of the bucket taken at or before `at`. */
export async function findSnapshot(
  repositories: Repository[],
  bucket: string,
  selector: { id?: string; at?: Date },
): Promise<ResolvedBackup | undefined> {
  if (selector.id) {
    const resolved = await resolveBackup(repositories, selector.id);
    if (resolved.manifest.kind !== SNAPSHOT_KIND || resolved.manifest.source !== bucket) {
      throw new LifeboatError(
        "USAGE",
        `backup ${selector.id} is a ${resolved.manifest.kind} of ${resolved.manifest.source ?? "?"}, not a snapshot of ${bucket}`,
      );
    }
    return resolved;
  }
  return newestSaved(repositories, bucket, [SNAPSHOT_KIND], selector.at);
}

function objectOf(resolved: ResolvedBackup, name: string) {
  const record = resolved.manifest.objects.find((o) => o.name === name);
  if (!record) {
    throw new LifeboatError("REPO_FORMAT", `backup ${resolved.manifest.id} has no ${name}`);
  }
  return record;
}

/** The lines of a snapshot's objects.jsonl, decrypted and verified as they stream. */
export async function* readSnapshotLines(
  resolved: ResolvedBackup,
  identities: readonly AgeIdentity[],
): AsyncGenerator<SnapshotLine> {
  const stream = await resolved.repository.openObject(
    resolved.manifest,
    objectOf(resolved, OBJECTS_NAME),
    {
      identities,
    },
  );
  for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
    if (line.trim()) yield JSON.parse(line) as SnapshotLine;
  }
}

export async function readSavedSettings(
  resolved: ResolvedBackup,
  identities: readonly AgeIdentity[],
): Promise<BucketSettings> {
  const stream = await resolved.repository.openObject(
    resolved.manifest,
    objectOf(resolved, SETTINGS_NAME),
    {
      identities,
    },
  );
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return parseSettings(Buffer.concat(chunks).toString("utf8"));
}

/** Saved settings of a bucket: from backup `id`, or the newest snapshot or sync save. */
export async function latestSettings(
  repositories: Repository[],
  bucket: string,
  identities: readonly AgeIdentity[],
  id?: string,
): Promise<{ backupId: string; settings: BucketSettings } | undefined> {
  const resolved = id
    ? await resolveBackup(repositories, id)
    : await newestSaved(repositories, bucket);
  if (!resolved) return undefined;
  const { kind, source } = resolved.manifest;
  if ((kind !== SNAPSHOT_KIND && kind !== SETTINGS_KIND) || source !== bucket) {
    throw new LifeboatError(
      "USAGE",
      `backup ${resolved.manifest.id} is a ${kind} of ${source ?? "?"}, not saved settings of ${bucket}`,
    );
  }
  return {
    backupId: resolved.manifest.id,
    settings: await readSavedSettings(resolved, identities),
  };
}
