import { LocalStorage } from "./local.js";
import { DEFAULT_CONCURRENCY, withConcurrencyLimit } from "./limit.js";
import { withRetry, type RetryOptions } from "./retry.js";
import type { S3StorageOptions } from "./s3.js";
import { LazyStorage } from "./lazy.js";
import { s3Location } from "./s3-location.js";
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
// The S3 driver is not re-exported as a value: importing it loads the AWS SDK (see lazy.ts).
export type { S3Storage, S3StorageOptions } from "./s3.js";
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
export type OpenedStorage = Storage & { readonly backend: Storage };

/**
 * Creates the driver for `config`, wrapped as retry(limit(driver)): retry is outermost so a
 * backoff sleep does not hold a concurrency slot.
 */
export function openStorage(
  config: StorageConfig,
  options: OpenStorageOptions = {},
): OpenedStorage {
  let backend: Storage;
  switch (config.type) {
    case "local":
      backend = new LocalStorage(config.path);
      break;
    case "s3": {
      const { type: _type, ...s3 } = config;
      backend = new LazyStorage(
        s3Location(s3),
        { rangedGet: true, multipart: true, serverSideCopy: true },
        async () => {
          const { S3Storage } = await import("./s3.js");
          return new S3Storage(s3);
        },
      );
      break;
    }
  }
  let storage: Storage = withConcurrencyLimit(backend, options.concurrency ?? DEFAULT_CONCURRENCY);
  if (options.retry !== false) storage = withRetry(storage, options.retry ?? {});
  return Object.assign(storage, { backend });
}
