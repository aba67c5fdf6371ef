import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { LifeboatError } from "../errors.js";

export interface Digest {
  sha256: string;
  bytes: number;
}

export interface DigestExpectation extends Digest {
  /** Names the data in errors, e.g. `stored bytes of data/<id>/dump`. */
  label: string;
}

/** Bytes between pipeline stages: big enough that per-chunk overhead stays small. */
export const STREAM_CHUNK = 1 << 20;

/**
 * A pass-through stage that counts and hashes what flows through it. With an expectation it
 * turns a mismatch into a stream error at the end, so a consumer never sees a clean end-of-stream
 * for bytes that differ from the manifest (truncation included).
 */
export class DigestStage extends Transform {
  private readonly hash: Hash = createHash("sha256");
  private count = 0;
  private final: Digest | undefined;

  constructor(private readonly expectation?: DigestExpectation) {
    super({ readableHighWaterMark: STREAM_CHUNK, writableHighWaterMark: STREAM_CHUNK });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.count += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.final = { sha256: this.hash.digest("hex"), bytes: this.count };
    callback(this.mismatch(this.final));
  }

  /** Final digest; throws if the stream has not ended. */
  result(): Digest {
    if (!this.final) throw new LifeboatError("INTERNAL", "digest read before the stream ended");
    return this.final;
  }

  get bytesSeen(): number {
    return this.count;
  }

  private mismatch(actual: Digest): LifeboatError | null {
    const expected = this.expectation;
    if (!expected) return null;
    if (actual.bytes < expected.bytes) {
      return new LifeboatError(
        "OBJECT_TRUNCATED",
        `${expected.label}: ${actual.bytes} bytes read, ${expected.bytes} recorded in the manifest`,
      );
    }
    if (actual.bytes !== expected.bytes || actual.sha256 !== expected.sha256) {
      return new LifeboatError(
        "OBJECT_CORRUPT",
        `${expected.label}: sha256 ${actual.sha256.slice(0, 16)}… (${actual.bytes} bytes) differs from the manifest's ${expected.sha256.slice(0, 16)}… (${expected.bytes} bytes)`,
      );
    }
    return null;
  }
}
