import type { Readable } from "node:stream";
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

/**
 * A driver whose module is loaded on first use. The AWS SDK takes ~0.3 s to load; commands that
 * never touch S3 (a local-only backup, `--help`, the WAL fast path) should not pay for it.
 */
export class LazyStorage implements Storage {
  private driver: Promise<Storage> | undefined;

  constructor(
    readonly location: string,
    readonly features: StorageFeatures,
    private readonly load: () => Promise<Storage>,
  ) {}

  private loaded(): Promise<Storage> {
    this.driver ??= this.load();
    return this.driver;
  }

  async put(key: string, body: PutBody, options?: PutOptions): Promise<PutResult> {
    return (await this.loaded()).put(key, body, options);
  }

  async get(key: string, options?: GetOptions): Promise<Readable> {
    return (await this.loaded()).get(key, options);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    return (await this.loaded()).stat(key);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    yield* (await this.loaded()).list(prefix);
  }

  async delete(key: string): Promise<void> {
    return (await this.loaded()).delete(key);
  }

  async purgeAbandoned(prefix: string, olderThanMs: number): Promise<AbandonedPurge> {
    const driver = await this.loaded();
    return driver.purgeAbandoned
      ? driver.purgeAbandoned(prefix, olderThanMs)
      : { count: 0, bytes: 0 };
  }

  async close(): Promise<void> {
    if (this.driver) await (await this.driver).close?.();
  }
}
