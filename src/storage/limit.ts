import type { Readable } from "node:stream";
import type { GetOptions, ObjectInfo, PutBody, PutOptions, PutResult, Storage } from "./types.js";

export const DEFAULT_CONCURRENCY = 16;

/** A counting semaphore; waiters are served first come, first served. */
export class Semaphore {
  private free: number;
  private readonly waiters: (() => void)[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1)
      throw new RangeError(`concurrency must be >= 1, got ${size}`);
    this.free = size;
  }

  /** Resolves with a release function; calling it more than once has no further effect. */
  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiters.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next();
      else this.free++;
    };
  }

  get inUse(): number {
    return this.size - this.free;
  }
}

/**
 * Bounds the operations in flight against a backend (sockets, file handles, server load).
 *
 * - `get` holds its slot until the returned stream ends, errors or is destroyed: an open download
 *   is load on the backend. A caller that leaves a stream unread and undestroyed leaks a slot.
 * - `list` holds a slot only while waiting for the next entry (that is where the page fetch
 *   happens), never while the consumer works on an entry: a consumer that deletes or reads each
 *   listed key would otherwise deadlock a limit of 1.
 * - Piping a `get` of this storage into a `put` of the same storage needs two slots.
 */
export function withConcurrencyLimit(storage: Storage, n: number = DEFAULT_CONCURRENCY): Storage {
  const semaphore = new Semaphore(n);

  async function limited<T>(fn: () => Promise<T>): Promise<T> {
    const release = await semaphore.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }

  async function get(key: string, options?: GetOptions): Promise<Readable> {
    const release = await semaphore.acquire();
    try {
      const stream = await storage.get(key, options);
      if (stream.destroyed || stream.readableEnded) release();
      stream.once("end", release).once("error", release).once("close", release);
      return stream;
    } catch (error) {
      release();
      throw error;
    }
  }

  async function* list(prefix: string): AsyncGenerator<ObjectInfo> {
    const iterator = storage.list(prefix)[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await limited(() => iterator.next());
        if (next.done) return;
        yield next.value;
      }
    } finally {
      await iterator.return?.();
    }
  }

  return {
    location: storage.location,
    features: storage.features,
    put: (key: string, body: PutBody, options?: PutOptions): Promise<PutResult> =>
      limited(() => storage.put(key, body, options)),
    get,
    stat: (key) => limited(() => storage.stat(key)),
    list,
    delete: (key) => limited(() => storage.delete(key)),
    close: () => storage.close?.() ?? Promise.resolve(),
    ...(storage.purgeAbandoned
      ? {
          purgeAbandoned: (prefix: string, olderThanMs: number) =>
            storage.purgeAbandoned!(prefix, olderThanMs),
        }
      : {}),
  };
}
