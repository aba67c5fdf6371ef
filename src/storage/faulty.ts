import { Transform, type Readable } from "node:stream";
import { LifeboatError, type ErrorCode } from "../errors.js";
import type { GetOptions, ObjectInfo, PutBody, PutOptions, PutResult, Storage } from "./types.js";
import { isReopenable } from "./types.js";

export type FaultOperation = "put" | "get" | "stat" | "list" | "delete";

interface Fault {
  remaining: number;
  code: ErrorCode;
  /** list: fail after yielding this many entries instead of before the first. */
  afterItems?: number;
}

interface Cut {
  remaining: number;
  afterBytes: number;
  code: ErrorCode;
}

/**
 * Fault injection for tests and chaos drills: wraps a real backend and makes chosen operations
 * fail, or cuts download streams part-way, with the error code a real driver would raise.
 */
export class FaultyStorage implements Storage {
  /** Calls seen per operation (failed ones included), for assertions on retry behaviour. */
  readonly calls: Record<FaultOperation, number> = { put: 0, get: 0, stat: 0, list: 0, delete: 0 };
  private readonly faults = new Map<FaultOperation, Fault>();
  private cut: Cut | undefined;

  constructor(readonly inner: Storage) {}

  get location(): string {
    return this.inner.location;
  }

  get features(): Storage["features"] {
    return this.inner.features;
  }

  /** The next `count` calls of each operation named fail with `code` (default transient). */
  failNext(
    operations: FaultOperation | FaultOperation[],
    count = 1,
    code: ErrorCode = "STORAGE_TRANSIENT",
    options: { afterItems?: number } = {},
  ): this {
    for (const op of [operations].flat()) {
      this.faults.set(op, { remaining: count, code, afterItems: options.afterItems });
    }
    return this;
  }

  /** The next `count` get streams deliver `afterBytes` bytes, then error with `code`. */
  cutNextGet(afterBytes: number, count = 1, code: ErrorCode = "STORAGE_TRANSIENT"): this {
    this.cut = { remaining: count, afterBytes, code };
    return this;
  }

  /** Removes every pending fault and zeroes the call counters. */
  reset(): this {
    this.faults.clear();
    this.cut = undefined;
    for (const op of Object.keys(this.calls) as FaultOperation[]) this.calls[op] = 0;
    return this;
  }

  async put(key: string, body: PutBody, options?: PutOptions): Promise<PutResult> {
    this.calls.put++;
    const fault = this.take("put");
    if (fault) {
      // Like a real failed upload, a one-shot stream is spent; a reopenable body is untouched.
      if (!isReopenable(body)) body.destroy();
      throw this.error(fault.code, "put", key);
    }
    return this.inner.put(key, body, options);
  }

  async get(key: string, options?: GetOptions): Promise<Readable> {
    this.calls.get++;
    const fault = this.take("get");
    if (fault) throw this.error(fault.code, "get", key);
    const stream = await this.inner.get(key, options);
    const cut = this.cut;
    if (!cut || cut.remaining <= 0) return stream;
    cut.remaining--;
    return this.cutAfter(stream, cut.afterBytes, this.error(cut.code, "get (stream cut)", key));
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    this.calls.stat++;
    const fault = this.take("stat");
    if (fault) throw this.error(fault.code, "stat", key);
    return this.inner.stat(key);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    this.calls.list++;
    const fault = this.take("list");
    if (fault && !fault.afterItems) throw this.error(fault.code, "list", prefix);
    let yielded = 0;
    for await (const info of this.inner.list(prefix)) {
      if (fault && yielded === fault.afterItems) throw this.error(fault.code, "list", prefix);
      yield info;
      yielded++;
    }
  }

  async delete(key: string): Promise<void> {
    this.calls.delete++;
    const fault = this.take("delete");
    if (fault) throw this.error(fault.code, "delete", key);
    return this.inner.delete(key);
  }

  purgeAbandoned(prefix: string, olderThanMs: number) {
    return (
      this.inner.purgeAbandoned?.(prefix, olderThanMs) ?? Promise.resolve({ count: 0, bytes: 0 })
    );
  }

  close(): Promise<void> {
    return this.inner.close?.() ?? Promise.resolve();
  }

  private take(op: FaultOperation): Fault | undefined {
    const fault = this.faults.get(op);
    if (!fault || fault.remaining <= 0) return undefined;
    fault.remaining--;
    return fault;
  }

  private error(code: ErrorCode, op: string, key: string): LifeboatError {
    return new LifeboatError(code, `injected fault: ${op} of ${key} at ${this.location}`);
  }

  private cutAfter(stream: Readable, afterBytes: number, error: LifeboatError): Readable {
    let left = afterBytes;
    const cutter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        if (chunk.length < left) {
          left -= chunk.length;
          return done(null, chunk);
        }
        if (left > 0) cutter.push(chunk.subarray(0, left));
        left = 0;
        stream.destroy();
        done(error);
      },
    });
    stream.once("error", (err) => cutter.destroy(err));
    // A source shorter than the cut point ends normally.
    return stream.pipe(cutter);
  }
}
