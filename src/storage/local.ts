import { randomBytes } from "node:crypto";
import { type Dirent } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { Readable } from "node:stream";
import { LifeboatError, isLifeboatError } from "../errors.js";
import { TEMP_PREFIX, checkRange, compareKeys, validateKey, validatePrefix } from "./keys.js";
import type {
  AbandonedPurge,
  GetOptions,
  ObjectInfo,
  PutBody,
  PutOptions,
  PutResult,
  Storage,
  StorageFeatures,
} from "./types.js";
import { openBody } from "./types.js";

/**
 * A repository in a local folder (or a mounted network file system). Keys map to files below
 * `root`; `/` in keys becomes a directory level, so a key cannot also be a "directory" of other
 * keys (`a` and `a/b` cannot both exist), unlike on S3.
 */
export class LocalStorage implements Storage {
  readonly root: string;
  readonly location: string;
  readonly features: StorageFeatures = { rangedGet: true, multipart: false, serverSideCopy: false };

  constructor(root: string) {
    this.root = path.resolve(root);
    this.location = this.root;
  }

  async put(key: string, body: PutBody, _options?: PutOptions): Promise<PutResult> {
    const target = this.pathOf(validateKey(key));
    const dir = path.dirname(target);
    // Opening the body can fail for the caller's own reasons: those errors pass through unchanged.
    const source = await openBody(body);
    let temp: { handle: fs.FileHandle; tempPath: string } | undefined;
    let renamed = false;
    try {
      temp = await createTemp(dir);
      const { handle, tempPath } = temp;
      let size = 0;
      // Errors thrown by the iteration come from the body, the caller's problem: they pass
      // through unchanged; only write errors become storage errors.
      for await (const chunk of source) {
        const bytes = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
        await writeAll(handle, bytes).catch((error) =>
          Promise.reject(ioError(error, "write", tempPath)),
        );
        size += bytes.length;
      }
      await handle.sync().catch((error) => Promise.reject(ioError(error, "fsync", tempPath)));
      await fs
        .rename(tempPath, target)
        .catch((error) => Promise.reject(ioError(error, "rename", target)));
      renamed = true;
      // The rename is only durable once the folder entry itself reaches the disk.
      await syncDir(dir);
      return { key, size };
    } catch (error) {
      source.destroy();
      throw error;
    } finally {
      await temp?.handle.close().catch(() => undefined);
      if (temp && !renamed) await fs.rm(temp.tempPath, { force: true }).catch(() => undefined);
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const file = this.pathOf(validateKey(key));
    const range = checkRange(options.range);
    // Open eagerly so a missing key rejects here instead of erroring the stream later.
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(file, "r");
    } catch (error) {
      throw missingOr(error, "open", file, key);
    }
    const info = await handle.stat().catch(async (error) => {
      await handle.close();
      throw ioError(error, "stat", file);
    });
    if (!info.isFile()) {
      await handle.close();
      throw notFound(key, file);
    }
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? Infinity, info.size - 1);
    if (start > end) {
      // Starting at or past the end is an empty read, as the S3 driver answers HTTP 416.
      await handle.close();
      return Readable.from([]);
    }
    return handle.createReadStream({ start, end, autoClose: true });
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const file = this.pathOf(validateKey(key));
    try {
      const info = await fs.stat(file);
      return info.isFile() ? { key, size: info.size, modified: info.mtime } : undefined;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw ioError(error, "stat", file);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    // Descend straight to the deepest folder the prefix names; only its last, partial segment
    // needs filtering, and everything below a matching entry matches.
    const cut = prefix.lastIndexOf("/") + 1;
    yield* this.walk(prefix.slice(0, cut), prefix.slice(cut));
  }

  async delete(key: string): Promise<void> {
    const file = this.pathOf(validateKey(key));
    try {
      await fs.unlink(file);
    } catch (error) {
      const code = errnoCode(error);
      if (isMissing(error)) return;
      // EISDIR (EPERM on macOS): the key names a folder of other keys, so no object exists there.
      const isDir = await fs.stat(file).then(
        (s) => s.isDirectory(),
        () => false,
      );
      if (!isDir || (code !== "EISDIR" && code !== "EPERM")) throw ioError(error, "delete", file);
      return;
    }
    // Empty folders would otherwise pile up forever as keys come and go.
    for (let dir = path.dirname(file); dir !== this.root && dir.startsWith(this.root);) {
      try {
        await fs.rmdir(dir);
      } catch {
        break; // not empty (or already gone, or recreated by a concurrent put): stop here
      }
      dir = path.dirname(dir);
    }
  }

  async purgeAbandoned(prefix: string, olderThanMs: number): Promise<AbandonedPurge> {
    const result = { count: 0, bytes: 0 };
    const cutoff = Date.now() - olderThanMs;
    const visit = async (dir: string): Promise<void> => {
      let entries: Dirent[];
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (error) {
        if (isMissing(error)) return;
        throw ioError(error, "list", dir);
      }
      for (const entry of entries) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await visit(full);
        else if (entry.name.startsWith(TEMP_PREFIX)) {
          const info = await fs.stat(full).catch(() => undefined);
          if (info && info.mtimeMs < cutoff) {
            await fs.rm(full, { force: true });
            result.count++;
            result.bytes += info.size;
          }
        }
      }
    };
    await visit(path.join(this.root, ...validatePrefix(prefix).split("/").filter(Boolean)));
    return result;
  }

  private pathOf(key: string): string {
    return path.join(this.root, ...key.split("/"));
  }

  private async *walk(relDir: string, namePrefix: string): AsyncGenerator<ObjectInfo> {
    const dir = path.join(this.root, ...relDir.split("/").filter(Boolean));
    let entries: Dirent[];
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return;
      throw ioError(error, "list", dir);
    }
    // Sorting folders as `name/` interleaves them exactly where their keys fall in byte order:
    // `a-b` < `a/x` < `a0`, because `-` < `/` < `0`.
    const sorted = entries
      .filter((e) => e.name.startsWith(namePrefix))
      .filter((e) => e.isDirectory() || !e.name.startsWith(TEMP_PREFIX))
      .map((e) => ({ entry: e, sortKey: e.isDirectory() ? `${e.name}/` : e.name }))
      .sort((a, b) => compareKeys(a.sortKey, b.sortKey));
    for (const { entry } of sorted) {
      const key = relDir + entry.name;
      if (entry.isDirectory()) {
        yield* this.walk(`${key}/`, "");
        continue;
      }
      try {
        const info = await fs.stat(path.join(dir, entry.name));
        if (info.isFile()) yield { key, size: info.size, modified: info.mtime };
        else if (info.isDirectory()) yield* this.walk(`${key}/`, ""); // symlink to a folder
      } catch (error) {
        if (!isMissing(error)) throw ioError(error, "stat", path.join(dir, entry.name));
        // deleted while listing: S3 listings are not snapshots either
      }
    }
  }
}

async function createTemp(dir: string): Promise<{ handle: fs.FileHandle; tempPath: string }> {
  // A concurrent delete may remove the just-created (still empty) folder; create it again.
  for (let attempt = 1; ; attempt++) {
    try {
      await fs.mkdir(dir, { recursive: true });
    } catch (error) {
      throw ioError(error, "create folder", dir);
    }
    const tempPath = path.join(dir, `${TEMP_PREFIX}${randomBytes(8).toString("hex")}`);
    try {
      return { handle: await fs.open(tempPath, "wx", 0o644), tempPath };
    } catch (error) {
      if (errnoCode(error) !== "ENOENT" || attempt >= 5) throw ioError(error, "create", tempPath);
    }
  }
}

async function writeAll(handle: fs.FileHandle, bytes: Buffer): Promise<void> {
  for (let offset = 0; offset < bytes.length;) {
    offset += (await handle.write(bytes, offset)).bytesWritten;
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fs
    .open(dir, "r")
    .catch((error) => Promise.reject(ioError(error, "open", dir)));
  try {
    await handle.sync();
  } catch (error) {
    // Some file systems (and Windows) cannot fsync folders; the data itself is already synced.
    if (!["EINVAL", "ENOTSUP", "EISDIR", "EPERM"].includes(errnoCode(error) ?? "")) {
      throw ioError(error, "fsync", dir);
    }
  } finally {
    await handle.close();
  }
}

function errnoCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function isMissing(error: unknown): boolean {
  const code = errnoCode(error);
  return code === "ENOENT" || code === "ENOTDIR";
}

function notFound(key: string, file: string): LifeboatError {
  return new LifeboatError("STORAGE_NOT_FOUND", `object ${key} not found (${file})`);
}

function missingOr(error: unknown, op: string, file: string, key: string): LifeboatError {
  return isMissing(error) || errnoCode(error) === "EISDIR"
    ? notFound(key, file)
    : ioError(error, op, file);
}

function ioError(error: unknown, op: string, file: string): LifeboatError {
  if (isLifeboatError(error)) return error;
  const code = errnoCode(error);
  const reason = error instanceof Error ? error.message : String(error);
  const denied = code === "EACCES" || code === "EPERM" || code === "EROFS";
  return new LifeboatError(
    denied ? "STORAGE_DENIED" : "STORAGE_IO",
    `cannot ${op} ${file}: ${reason}`,
    {
      cause: error,
      hint:
        code === "ENOSPC"
          ? "the disk is full: free space or move the repository"
          : denied
            ? "check the permissions of the repository folder"
            : undefined,
    },
  );
}
