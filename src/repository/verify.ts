import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { isLifeboatError, toLifeboatError, type ErrorCode } from "../errors.js";
import { DigestStage } from "../stream/digest.js";
import type { AgeIdentity } from "../stream/age/index.js";
import type { Manifest, ObjectRecord } from "./format.js";
import type { Repository } from "./repository.js";

/**
 * quick: objects exist with the recorded sizes (stat only).
 * stored: stored bytes re-read and their sha256 checked — needs no key, so backup hosts can run it.
 * full: also decrypted, decompressed and the plaintext sha256 checked — needs the identity.
 */
export type VerifyLevel = "quick" | "stored" | "full";

export interface ObjectCheck {
  name: string;
  key: string;
  ok: boolean;
  code?: ErrorCode;
  problem?: string;
}

export interface VerifyReport {
  backupId: string;
  repository: string;
  level: VerifyLevel;
  ok: boolean;
  objects: ObjectCheck[];
  /** Checks specific to the backup kind (e.g. pg_restore can read the archive). */
  extra: ObjectCheck[];
  durationMs: number;
}

/** A kind-specific check, given a way to stream an object's verified plaintext. */
export type KindVerifier = (context: {
  repository: Repository;
  manifest: Manifest;
  identities: readonly AgeIdentity[];
}) => Promise<ObjectCheck[]>;

const kindVerifiers = new Map<string, KindVerifier>();

export function registerKindVerifier(kind: string, verifier: KindVerifier): void {
  kindVerifiers.set(kind, verifier);
}

export async function verifyBackup(
  repository: Repository,
  manifest: Manifest,
  options: { level: VerifyLevel; identities?: readonly AgeIdentity[] },
): Promise<VerifyReport> {
  const started = Date.now();
  const identities = options.identities ?? [];
  const objects: ObjectCheck[] = [];
  for (const record of manifest.objects) {
    objects.push(await checkObject(repository, manifest, record, options.level, identities));
  }
  const extra: ObjectCheck[] = [];
  const verifier = kindVerifiers.get(manifest.kind);
  if (options.level === "full" && verifier && objects.every((o) => o.ok)) {
    extra.push(...(await verifier({ repository, manifest, identities })));
  }
  return {
    backupId: manifest.id,
    repository: repository.name,
    level: options.level,
    ok: objects.every((o) => o.ok) && extra.every((o) => o.ok),
    objects,
    extra,
    durationMs: Date.now() - started,
  };
}

async function checkObject(
  repository: Repository,
  manifest: Manifest,
  record: ObjectRecord,
  level: VerifyLevel,
  identities: readonly AgeIdentity[],
): Promise<ObjectCheck> {
  const base = { name: record.name, key: record.key };
  try {
    if (level === "quick") {
      const info = await repository.storage.stat(record.key);
      if (!info) return { ...base, ok: false, code: "OBJECT_MISSING", problem: "missing" };
      if (info.size !== record.size) {
        return {
          ...base,
          ok: false,
          code: info.size < record.size ? "OBJECT_TRUNCATED" : "OBJECT_CORRUPT",
          problem: `size ${info.size} differs from the manifest's ${record.size}`,
        };
      }
      return { ...base, ok: true };
    }
    if (level === "stored") {
      const stream = await repository.storage.get(record.key);
      const check = new DigestStage({
        label: `stored bytes of ${record.key}`,
        sha256: record.sha256,
        bytes: record.size,
      });
      await pipeline(stream, check, discard());
      return { ...base, ok: true };
    }
    await pipeline(await repository.openObject(manifest, record, { identities }), discard());
    return { ...base, ok: true };
  } catch (error) {
    const failure = isLifeboatError(error, "STORAGE_NOT_FOUND")
      ? { code: "OBJECT_MISSING" as const, problem: "missing" }
      : { code: toLifeboatError(error).code, problem: toLifeboatError(error).message };
    if (
      failure.code === "STORAGE_UNREACHABLE" ||
      failure.code === "STORAGE_AUTH" ||
      failure.code === "KEY_NOT_FOUND"
    ) {
      throw error;
    }
    return { ...base, ok: false, ...failure };
  }
}

export function discard(): Writable {
  return new Writable({
    highWaterMark: 1 << 20,
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
}
