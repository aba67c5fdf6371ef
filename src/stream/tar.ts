import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { LifeboatError } from "../errors.js";

/**
 * A pass-through stage that reads a tar stream (ustar, with pax and GNU long names) as it flows
 * by: lists entries, hashes regular files and keeps small ones asked for (backup_manifest,
 * backup_label, pg_control). The bytes are passed on unchanged, so a base backup is inspected
 * and verified in the same single read that stores it.
 */

export interface TarEntry {
  name: string;
  /** "file", "directory", "symlink" or "other". */
  type: string;
  size: number;
  sha256?: string;
}

export interface TarInspectorOptions {
  /** sha256 of every regular file (for verification against a manifest). */
  hash?: boolean;
  /** Bytes to keep of the named entry (undefined: none). */
  capture?: (name: string) => number | undefined;
}

const BLOCK = 512;

export class TarInspector extends Transform {
  readonly entries: TarEntry[] = [];
  readonly captured = new Map<string, Buffer>();
  /** The end-of-archive marker (two zero blocks) was seen: the archive is complete. */
  complete = false;
  private header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  private dataLeft = 0;
  private padLeft = 0;
  private zeroBlocks = 0;
  private current: { entry: TarEntry; hash?: Hash; keep?: Buffer[]; keepLeft: number } | undefined;
  private meta: { kind: string; chunks: Buffer[] } | undefined;
  private nextName: string | undefined;

  constructor(private readonly options: TarInspectorOptions = {}) {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    try {
      this.consume(chunk);
    } catch (error) {
      done(error as Error);
      return;
    }
    done(null, chunk);
  }

  private consume(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.complete) {
      if (this.dataLeft > 0) {
        const take = Math.min(this.dataLeft, chunk.length - offset);
        this.data(chunk.subarray(offset, offset + take));
        this.dataLeft -= take;
        offset += take;
        if (this.dataLeft === 0) this.finishEntry();
      } else if (this.padLeft > 0) {
        const take = Math.min(this.padLeft, chunk.length - offset);
        this.padLeft -= take;
        offset += take;
      } else {
        const take = Math.min(BLOCK - this.headerFill, chunk.length - offset);
        chunk.copy(this.header, this.headerFill, offset, offset + take);
        this.headerFill += take;
        offset += take;
        if (this.headerFill === BLOCK) {
          this.headerFill = 0;
          this.parseHeader(this.header);
        }
      }
    }
  }

  private parseHeader(block: Buffer): void {
    if (block.every((byte) => byte === 0)) {
      if (++this.zeroBlocks === 2) this.complete = true;
      return;
    }
    this.zeroBlocks = 0;
    const stored = octal(block.subarray(148, 156));
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : block[i]!;
    if (stored !== sum) {
      throw new LifeboatError(
        "OBJECT_CORRUPT",
        `tar header checksum mismatch after ${this.entries.length} entries`,
      );
    }
    const size = numeric(block.subarray(124, 136));
    const flag = String.fromCharCode(block[156]!);
    let name = text(block.subarray(0, 100));
    if (block.subarray(257, 262).toString("latin1") === "ustar") {
      const prefix = text(block.subarray(345, 500));
      if (prefix) name = `${prefix}/${name}`;
    }
    if (flag === "x" || flag === "L" || flag === "g") {
      this.meta = { kind: flag, chunks: [] };
      this.current = undefined;
    } else {
      if (this.nextName !== undefined) name = this.nextName;
      this.nextName = undefined;
      const type =
        flag === "0" || flag === "\0"
          ? "file"
          : flag === "5"
            ? "directory"
            : flag === "2"
              ? "symlink"
              : "other";
      const entry: TarEntry = { name: name.replace(/^\.\//, "").replace(/\/$/, ""), type, size };
      const keepLeft = type === "file" ? (this.options.capture?.(entry.name) ?? 0) : 0;
      this.current = {
        entry,
        ...(type === "file" && this.options.hash ? { hash: createHash("sha256") } : {}),
        ...(keepLeft > 0 ? { keep: [] } : {}),
        keepLeft,
      };
    }
    this.dataLeft = size;
    this.padLeft = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size === 0) this.finishEntry();
  }

  private data(bytes: Buffer): void {
    if (this.meta) {
      this.meta.chunks.push(Buffer.from(bytes));
      return;
    }
    const current = this.current;
    if (!current) return;
    current.hash?.update(bytes);
    if (current.keep && current.keepLeft > 0) {
      const kept = bytes.subarray(0, current.keepLeft);
      current.keep.push(Buffer.from(kept));
      current.keepLeft -= kept.length;
    }
  }

  private finishEntry(): void {
    if (this.meta) {
      const body = Buffer.concat(this.meta.chunks).toString("utf8");
      if (this.meta.kind === "L") this.nextName = body.replace(/\0+$/, "");
      if (this.meta.kind === "x") {
        const match = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body);
        if (match) this.nextName = match[1];
      }
      this.meta = undefined;
      return;
    }
    const current = this.current;
    if (!current) return;
    if (current.hash) current.entry.sha256 = current.hash.digest("hex");
    if (current.keep) this.captured.set(current.entry.name, Buffer.concat(current.keep));
    this.entries.push(current.entry);
    this.current = undefined;
  }
}

function text(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString("utf8");
}

function octal(field: Buffer): number {
  const value = text(field).trim();
  return value === "" ? 0 : Number.parseInt(value, 8);
}

/** Size fields: octal, or base-256 (high bit set) for files of 8 GiB and more. */
function numeric(field: Buffer): number {
  if ((field[0]! & 0x80) !== 0) {
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value;
  }
  return octal(field);
}
