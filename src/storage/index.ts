import { LocalStorage } from "./local.js";
import { DEFAULT_CONCURRENCY, withConcurrencyLimit } from "./limit.js";
import { withRetry, type RetryOptions } from "./retry.js";
import { S3Storage, type S3StorageOptions } from "./s3.js";
import type { Storage } from "./types.js";

export * from "./types.js";
export {
  TEMP_PREFIX,
  checkRange,
  compareKeys,
  joinKey,
  validateKey,
  validatePrefix,
} from "./keys.js";
export { LocalStorage } from "./local.js";
export { DEFAULT_PART_SIZE, DEFAULT_QUEUE_SIZE, S3Storage, type S3StorageOptions } from "./s3.js";
export { DEFAULT_RETRY_ATTEMPTS, withRetry, type RetryEvent, type RetryOptions } from "./retry.js";
export { DEFAULT_CONCURRENCY, Semaphore, withConcurrencyLimit } from "./limit.js";
export { FaultyStorage, type FaultOperation } from "./faulty.js";

export type StorageConfig = { type: "local"; path: string } | ({ type: "s3" } & S3StorageOptions);

export interface OpenStorageOptions {
  /** Retry settings (default 5 attempts), or false for none. */
  retry?: RetryOptions | false;
  /** Operations in flight at once. Default 16. */
  concurrency?: number;
}

/** A wrapped storage that still gives access to the driver (S3 copy, the SDK client). */
export type OpenedStorage = Storage & { readonly backend: LocalStorage | S3Storage };

/**
 * Creates the driver for `config`, wrapped as retry(limit(driver)): retry is outermost so a
 * backoff sleep does not hold a concurrency slot.
 */
export function openStorage(
  config: StorageConfig,
  options: OpenStorageOptions = {},
): OpenedStorage {
  let backend: LocalStorage | S3Storage;
  switch (config.type) {
    case "local":
      backend = new LocalStorage(config.path);
      break;
    case "s3": {
      const { type: _type, ...s3 } = config;
      backend = new S3Storage(s3);
      break;
    }
  }
  let storage: Storage = withConcurrencyLimit(backend, options.concurrency ?? DEFAULT_CONCURRENCY);
  if (options.retry !== false) storage = withRetry(storage, options.retry ?? {});
  return Object.assign(storage, { backend });
}
