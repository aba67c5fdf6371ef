import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { LifeboatError } from "../errors.js";
import type { PgBinary } from "../postgres/binaries.js";
import { childEnv } from "../postgres/connection.js";
import {
  listArchive,
  restoreFromFile,
  restoreFromStream,
  type RestoreArchiveOptions,
} from "../postgres/restore.js";
import type { Manifest, ObjectRecord } from "../repository/format.js";
import type { Repository } from "../repository/repository.js";
import type { AgeIdentity } from "../stream/age/index.js";
import { ProgressStage, type ProgressListener } from "../stream/progress.js";
import { runTool } from "../util/process.js";
import { DIRECTORY_PREFIX, DUMP_OBJECT } from "./database.js";

/**
 * The pg_dump archive inside a db backup, whatever its format: one `dump.pgcustom` stream, or a
 * directory of `dump/<file>` objects. Restore and verify go through here.
 */
export interface ArchiveSource {
  repository: Repository;
  manifest: Manifest;
  identities: readonly AgeIdentity[];
  workDir?: string;
}

export function isDirectoryArchive(manifest: Manifest): boolean {
  return manifest.objects.some((o) => o.name.startsWith(DIRECTORY_PREFIX));
}

function directoryObjects(manifest: Manifest): ObjectRecord[] {
  return manifest.objects.filter((o) => o.name.startsWith(DIRECTORY_PREFIX));
}

function customObject(manifest: Manifest): ObjectRecord {
  const record = manifest.objects.find((o) => o.name === DUMP_OBJECT);
  if (!record)
    throw new LifeboatError("MANIFEST_CORRUPT", `backup ${manifest.id} has no pg_dump archive`);
  return record;
}

/** `pg_restore --list`: reads only the table of contents (toc.dat, or the head of the stream). */
export async function archiveToc(source: ArchiveSource, pgRestore: PgBinary): Promise<string> {
  if (!isDirectoryArchive(source.manifest)) {
    const stream = await source.repository.openObject(
      source.manifest,
      customObject(source.manifest),
      {
        identities: source.identities,
        checkPlain: false,
      },
    );
    return listArchive(stream, pgRestore);
  }
  return withMaterialised(
    source,
    (o) => o.name === `${DIRECTORY_PREFIX}toc.dat`,
    undefined,
    async (dir) => {
      const result = await runTool(pgRestore.path, ["--list", dir], {
        env: childEnv({}),
        inheritEnv: false,
      });
      if (result.code !== 0)
        throw new LifeboatError(
          "OBJECT_CORRUPT",
          `pg_restore cannot read the archive: ${result.stderr.split("\n")[0]}`,
        );
      return result.stdout;
    },
  );
}

/** Restores the archive: streamed when it can be, via a temporary plaintext copy when -j needs one. */
export async function restoreArchive(
  source: ArchiveSource,
  options: RestoreArchiveOptions,
  onProgress?: ProgressListener,
): Promise<void> {
  if (isDirectoryArchive(source.manifest)) {
    await withMaterialised(
      source,
      () => true,
      onProgress,
      (dir) => restoreFromFile(dir, options),
    );
    return;
  }
  const stream = counted(
    await source.repository.openObject(source.manifest, customObject(source.manifest), {
      identities: source.identities,
    }),
    onProgress,
  );
  if (options.jobs <= 1) {
    await restoreFromStream(stream, options);
    return;
  }
  // Parallel pg_restore needs a seekable file; the plaintext exists only for the restore.
  const dir = await mkdtemp(path.join(source.workDir ?? tmpdir(), "lifeboat-restore-"));
  try {
    const file = path.join(dir, "dump.pgcustom");
    await pipeline(stream, createWriteStream(file, { mode: 0o600 }));
    await restoreFromFile(file, options);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function withMaterialised<T>(
  source: ArchiveSource,
  wanted: (record: ObjectRecord) => boolean,
  onProgress: ProgressListener | undefined,
  work: (dir: string) => Promise<T>,
): Promise<T> {
  const base = await mkdtemp(path.join(source.workDir ?? tmpdir(), "lifeboat-restore-"));
  const dir = path.join(base, "dump");
  await mkdir(dir, { mode: 0o700 });
  let done = 0;
  try {
    for (const record of directoryObjects(source.manifest).filter(wanted)) {
      const name = record.name.slice(DIRECTORY_PREFIX.length);
      if (name.includes("/") || name.startsWith("."))
        throw new LifeboatError("MANIFEST_CORRUPT", `unexpected archive file ${record.name}`);
      const stream = await source.repository.openObject(source.manifest, record, {
        identities: source.identities,
      });
      const before = done;
      await pipeline(
        counted(stream, onProgress && ((bytes) => onProgress(before + bytes, false))),
        createWriteStream(path.join(dir, name), { mode: 0o600 }),
      );
      done += record.plain.bytes;
    }
    onProgress?.(done, true);
    return await work(dir);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

function counted(stream: Readable, listener?: ProgressListener): Readable {
  if (!listener) return stream;
  const stage = new ProgressStage(listener);
  stream.once("error", (error) => stage.destroy(error));
  return stream.pipe(stage);
}

export function archiveBytes(manifest: Manifest): number {
  return isDirectoryArchive(manifest)
    ? directoryObjects(manifest).reduce((sum, o) => sum + o.plain.bytes, 0)
    : (manifest.objects.find((o) => o.name === DUMP_OBJECT)?.plain.bytes ?? 0);
}
