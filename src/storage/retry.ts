import { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { isLifeboatError } from "../errors.js";
import { compareKeys } from "./keys.js";
import type { GetOptions, ObjectInfo, PutBody, PutOptions, PutResult, Storage } from "./types.js";
import { isReopenable } from "./types.js";

export const DEFAULT_RETRY_ATTEMPTS = 5;

export interface RetryEvent {
  operation: "put" | "get" | "get-resume" | "stat" | "list" | "delete";
  key: string;
  /** The attempt that just failed (1-based). */
  attempt: number;
  delayMs: number;
  error: unknown;
}

export interface RetryOptions {
  /** Total tries per operation, the first included. Default 5. */
  attempts?: number;
  /** Backoff before the first retry, doubled after each failure. Default 200 ms. */
  baseDelayMs?: number;
  /** Upper bound of a single backoff. Default 10 s. */
  maxDelayMs?: number;
  /** Called before each backoff (for logging). */
  onRetry?(event: RetryEvent): void;
  /** Injected by tests to avoid real waits. */
  sleep?(ms: number): Promise<void>;
  /** Injected by tests for deterministic jitter; returns [0, 1). */
  random?(): number;
}

/**
 * Retries transient storage failures (LifeboatError with `transient`, i.e. STORAGE_UNREACHABLE and
 * STORAGE_TRANSIENT) with exponential backoff and full jitter; anything else fails at once.
 *
 * - `put` is retried only for a ReopenableBody: a one-shot stream has been (partly) consumed by the
 *   failed attempt and cannot be replayed. Drivers still retry what they buffer themselves (the S3
 *   driver's parts).
 * - `get` retries opening; when the backend has `rangedGet`, a stream that fails mid-way with a
 *   transient error is resumed with a ranged get from the first byte not yet delivered.
 * - `list` restarts the listing after a transient failure and skips keys up to the last one
 *   already yielded, so the consumer never sees a key twice.
 */
export function withRetry(storage: Storage, options: RetryOptions = {}): Storage {
  const attempts = Math.max(1, options.attempts ?? DEFAULT_RETRY_ATTEMPTS);
  const baseDelayMs = options.baseDelayMs ?? 200;
  const maxDelayMs = options.maxDelayMs ?? 10_000;
  const sleep = options.sleep ?? ((ms: number) => delay(ms));
  const random = options.random ?? Math.random;

  const retryable = (error: unknown): boolean => isLifeboatError(error) && error.transient;

  /** Sleeps before the next try, or rethrows when the error is permanent or tries are used up. */
  async function backoff(
    operation: RetryEvent["operation"],
    key: string,
    attempt: number,
    error: unknown,
  ): Promise<void> {
    if (!retryable(error) || attempt >= attempts) throw error;
    const delayMs = Math.round(random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1)));
    options.onRetry?.({ operation, key, attempt, delayMs, error });
    await sleep(delayMs);
  }

  async function retry<T>(
    operation: RetryEvent["operation"],
    key: string,
    fn: () => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        await backoff(operation, key, attempt, error);
      }
    }
  }

  async function get(key: string, getOptions: GetOptions = {}): Promise<Readable> {
    const first = await retry("get", key, () => storage.get(key, getOptions));
    if (!storage.features.rangedGet) return first;
    const start = getOptions.range?.start ?? 0;
    const end = getOptions.range?.end;

    let source: Readable = first;
    async function* resumable(): AsyncGenerator<Buffer> {
      let offset = start;
      let failures = 0;
      for (;;) {
        try {
          for await (const chunk of source) {
            offset += (chunk as Buffer).length;
            yield chunk as Buffer;
          }
          return;
        } catch (error) {
          source.destroy();
          await backoff("get-resume", key, ++failures, error);
          const range = { start: offset, ...(end === undefined ? {} : { end }) };
          source = await retry("get", key, () => storage.get(key, { range }));
        }
      }
    }
    // The first stream is read through the generator too, so a failure there is resumable.
    const output = Readable.from(resumable(), { objectMode: false });
    // A generator that never started cannot clean up: release the socket or file ourselves.
    output.once("close", () => source.destroy());
    return output;
  }

  async function* list(prefix: string): AsyncGenerator<ObjectInfo> {
    let last: string | undefined;
    let failures = 0;
    for (;;) {
      try {
        for await (const info of storage.list(prefix)) {
          if (last !== undefined && compareKeys(info.key, last) <= 0) continue;
          last = info.key;
          failures = 0; // progress was made: only consecutive failures count
          yield info;
        }
        return;
      } catch (error) {
        await backoff("list", prefix, ++failures, error);
      }
    }
  }

  return {
    location: storage.location,
    features: storage.features,
    put(key: string, body: PutBody, putOptions?: PutOptions): Promise<PutResult> {
      if (!isReopenable(body)) return storage.put(key, body, putOptions);
      return retry("put", key, () => storage.put(key, body, putOptions));
    },
    get,
    stat: (key) => retry("stat", key, () => storage.stat(key)),
    list,
    delete: (key) => retry("delete", key, () => storage.delete(key)),
    close: () => storage.close?.() ?? Promise.resolve(),
    ...(storage.purgeAbandoned
      ? {
          purgeAbandoned: (prefix: string, olderThanMs: number) =>
            storage.purgeAbandoned!(prefix, olderThanMs),
        }
      : {}),
  };
}
