// Types for sql-dump.mjs (plain JavaScript so the benchmarks run without a build step).
import type { Readable, Transform } from "node:stream";

export interface SqlDumpOptions {
  /** Exact number of bytes to produce. */
  bytes: number;
  /** Same seed, same bytes. Default 1. */
  seed?: number;
  /** Size of the chunks pushed. Default 256 KiB. */
  chunkSize?: number;
  /** Rows per COPY block before the next table starts. Default 25 000. */
  rowsPerBlock?: number;
}

export function sqlDumpStream(options: SqlDumpOptions): Readable;

export function repeatedSqlDump(
  options: SqlDumpOptions & { periodBytes?: number },
): AsyncGenerator<Buffer>;

export function hashTap(): { tap: Transform; digest: Promise<{ sha256: string; bytes: number }> };
