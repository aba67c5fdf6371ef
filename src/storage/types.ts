import type { Readable } from "node:stream";

/**
 * The one storage interface every repository backend implements. Keys are `/`-separated paths
 * relative to the backend's root (a folder, or a bucket + prefix); they never start with `/` and
 * never contain `.` or `..` segments. Bodies are always streams: no method buffers a whole object.
 */
export interface Storage {
  /** Short human description of where data goes, without secrets (e.g. `s3://bucket/prefix`). */
  readonly location: string;
  readonly features: StorageFeatures;

  /**
   * Stores an object atomically: readers see the old object or the whole new one, never a part.
   * A `ReopenableBody` lets wrappers retry the whole put; a plain stream can only be consumed once.
   */
  put(key: string, body: PutBody, options?: PutOptions): Promise<PutResult>;

  /** Reads an object (or a byte range, `end` inclusive) as a stream. Throws STORAGE_NOT_FOUND. */
  get(key: string, options?: GetOptions): Promise<Readable>;

  /** Size and modification time, or undefined when the key does not exist. */
  stat(key: string): Promise<ObjectInfo | undefined>;

  /** Every object whose key starts with `prefix`, in ascending key order, paging internally. */
  list(prefix: string): AsyncIterable<ObjectInfo>;

  /** Removes an object; removing a missing key is not an error. */
  delete(key: string): Promise<void>;

  /** Releases sockets and file handles. */
  close?(): Promise<void>;

  /**
   * Removes what killed writers leave behind that `list` never shows (local temp files, S3
   * multipart uploads never completed), when older than `olderThanMs`, under `prefix`.
   */
  purgeAbandoned?(prefix: string, olderThanMs: number): Promise<AbandonedPurge>;
}

export interface AbandonedPurge {
  count: number;
  bytes: number;
}

export interface StorageFeatures {
  /** `get` honours `range` without reading the bytes before it. */
  rangedGet: boolean;
  /** Large bodies are uploaded in parts (memory stays bounded by part size x queue). */
  multipart: boolean;
  /** Objects can be copied inside the backend without passing through this process. */
  serverSideCopy: boolean;
}

/** A body that can be opened again from the start, so a failed put can be retried. */
export interface ReopenableBody {
  open(): Readable | Promise<Readable>;
  /** Exact length when known; lets backends choose single-part vs multipart. */
  size?: number;
}

export type PutBody = Readable | ReopenableBody;

export interface PutOptions {
  contentType?: string;
  /** S3 storage class for this object (e.g. GLACIER for archives); ignored by local storage. */
  storageClass?: string;
}

export interface PutResult {
  key: string;
  /** Bytes stored, counted as they were sent. */
  size: number;
}

export interface GetOptions {
  range?: { start: number; end?: number };
}

export interface ObjectInfo {
  key: string;
  size: number;
  modified: Date;
  etag?: string;
}

export function isReopenable(body: PutBody): body is ReopenableBody {
  return typeof (body as ReopenableBody).open === "function" && !("pipe" in body);
}

export async function openBody(body: PutBody): Promise<Readable> {
  return isReopenable(body) ? await body.open() : body;
}
