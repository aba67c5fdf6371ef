import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  UploadPartCopyCommand,
  type StorageClass,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { Readable, Transform } from "node:stream";
import { LifeboatError, isLifeboatError, type ErrorCode } from "../errors.js";
import { checkRange, validateKey, validatePrefix } from "./keys.js";
import type { GetOptions, ObjectInfo, PutBody, PutOptions, PutResult, Storage } from "./types.js";
import { openBody } from "./types.js";
import { normalisedPrefix, s3Location } from "./s3-location.js";

const MiB = 1024 * 1024;
export const DEFAULT_PART_SIZE = 8 * MiB;
export const DEFAULT_QUEUE_SIZE = 4;
/** CopyObject's own limit; larger objects are copied part by part. */
const MAX_COPY_SIZE = 5 * 1024 * MiB;

export interface S3StorageOptions {
  /** URL of an S3-compatible service (MinIO, radosgw, ...); AWS S3 when omitted. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Folder inside the bucket holding the repository; keys are relative to it. */
  prefix?: string;
  /** Address buckets as `host/bucket` instead of `bucket.host`. Default: on when `endpoint` is set. */
  pathStyle?: boolean;
  /** Static credentials; when omitted the AWS SDK default chain (environment, profile, IMDS) is used. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Multipart part size (min 5 MiB). Memory per upload is about partSize x (queueSize + 1). */
  partSize?: number;
  /** Parts uploaded in parallel per object. Default 4. */
  queueSize?: number;
  /** Tries per HTTP request inside the SDK (parts included). Default 3. */
  maxAttempts?: number;
  /** Storage class for new objects (e.g. STANDARD_IA, GLACIER); per-put options override it. */
  storageClass?: string;
  /** Time allowed to establish a connection. Default 10 s. */
  connectTimeoutMs?: number;
  /** A connection idle for this long is dropped (a stalled server). Default 120 s. */
  idleTimeoutMs?: number;
  /** Objects larger than this are copied with UploadPartCopy in parts of this size. Default 5 GiB. */
  copyPartSize?: number;
}

/** Amazon S3 and S3-compatible services. Objects are stored under `bucket/prefix/key`. */
export class S3Storage implements Storage {
  readonly location: string;
  readonly features = { rangedGet: true, multipart: true, serverSideCopy: true };
  readonly bucket: string;
  /** Normalised prefix: empty, or ending in `/`. */
  readonly prefix: string;
  private client: S3Client | undefined;
  private readonly secrets: string[];

  constructor(private readonly options: S3StorageOptions) {
    this.bucket = options.bucket;
    this.prefix = normalisedPrefix(options.prefix);
    this.location = s3Location(options);
    const c = options.credentials;
    this.secrets = [c?.accessKeyId, c?.secretAccessKey, c?.sessionToken].filter(
      (s): s is string => !!s,
    );
  }

  /** The SDK client, created on first use (so configuring storage never touches the network). */
  s3Client(): S3Client {
    this.client ??= new S3Client({
      region: this.options.region,
      endpoint: this.options.endpoint,
      forcePathStyle: this.options.pathStyle ?? this.options.endpoint !== undefined,
      credentials: this.options.credentials,
      maxAttempts: this.options.maxAttempts ?? 3,
      // Flexible checksums are not implemented by several S3-compatible servers (radosgw ignores
      // them); content is verified end to end with our own sha256 instead.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      requestHandler: {
        connectionTimeout: this.options.connectTimeoutMs ?? 10_000,
        socketTimeout: this.options.idleTimeoutMs ?? 120_000,
      },
    });
    return this.client;
  }

  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<PutResult> {
    validateKey(key);
    const source = await openBody(body);
    let size = 0;
    let sourceError: unknown;
    const counter = counting((n) => (size += n));
    source.once("error", (error) => counter.destroy((sourceError ??= error) as Error));
    source.pipe(counter);
    // Upload sends a body that fits in one part as a single PutObject, larger ones as multipart,
    // holding at most queueSize parts plus the one being filled.
    const upload = new Upload({
      client: this.s3Client(),
      partSize: this.options.partSize ?? DEFAULT_PART_SIZE,
      queueSize: this.options.queueSize ?? DEFAULT_QUEUE_SIZE,
      params: {
        Bucket: this.bucket,
        Key: this.prefix + key,
        Body: counter,
        ContentType: options.contentType,
        StorageClass: this.storageClass(options.storageClass),
      },
    });
    try {
      await upload.done();
      return { key, size };
    } catch (error) {
      source.unpipe(counter);
      source.destroy();
      counter.destroy();
      // Upload aborts its multipart upload itself, but if that request failed too the parts would
      // be stored (and billed) forever: try once more.
      if (upload.uploadId) await this.abortMultipart(this.prefix + key, upload.uploadId);
      // A failing body is the caller's problem, not the storage's: rethrow it unchanged.
      if (sourceError !== undefined) throw sourceError;
      throw this.error(error, "put", key);
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    validateKey(key);
    const range = checkRange(options.range);
    const Range = range ? `bytes=${range.start}-${range.end ?? ""}` : undefined;
    let response;
    try {
      response = await this.s3Client().send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Range }),
      );
    } catch (error) {
      // 416: the range starts at or past the end; the contract answers with an empty stream.
      const invalidRange = s3ErrorCode(error) === "InvalidRange" || httpStatus(error) === 416;
      if (range && invalidRange) return Readable.from([]);
      throw this.error(error, "get", key);
    }
    const body = response.Body as Readable;
    const expected = response.ContentLength;
    let received = 0;
    // Connection errors mid-body surface as raw socket errors, and a server that closes early can
    // end the body silently: both become transient storage errors, which retry resumes.
    const checked = counting(
      (n) => (received += n),
      () =>
        expected === undefined || received === expected
          ? undefined
          : new LifeboatError(
              "STORAGE_TRANSIENT",
              `S3 get of ${key} at ${this.location} ended after ${received} of ${expected} bytes`,
            ),
    );
    body.once("error", (cause) => checked.destroy(this.error(cause, "get", key)));
    checked.once("close", () => body.destroy());
    return body.pipe(checked);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    validateKey(key);
    try {
      const head = await this.call("stat", key, (s3) =>
        s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key })),
      );
      const modified = head.LastModified ?? new Date(0);
      return { key, size: head.ContentLength ?? 0, modified, etag: head.ETag };
    } catch (error) {
      // A HEAD response has no body, so a missing bucket is also a bare 404 and reads as "absent".
      if (isLifeboatError(error, "STORAGE_NOT_FOUND")) return undefined;
      throw error;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    let token: string | undefined;
    do {
      const page = await this.call("list", prefix || "(all)", (s3) =>
        s3.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ContinuationToken: token,
          }),
        ),
      );
      for (const { Key, Size, LastModified, ETag } of page.Contents ?? []) {
        if (!Key) continue;
        const key = Key.slice(this.prefix.length);
        yield { key, size: Size ?? 0, modified: LastModified ?? new Date(0), etag: ETag };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    await this.call("delete", key, (s3) =>
      s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key })),
    ).catch((error) => {
      if (!isLifeboatError(error, "STORAGE_NOT_FOUND")) throw error;
    });
  }

  /**
   * Copies an object inside the bucket without the bytes passing through this process. Objects
   * over `copyPartSize` (CopyObject accepts at most 5 GiB) are copied part by part.
   */
  async copyObject(srcKey: string, dstKey: string, options: { storageClass?: string } = {}) {
    const source = await this.stat(validateKey(srcKey));
    const what = `${srcKey} to ${validateKey(dstKey)}`;
    if (!source) {
      throw new LifeboatError("STORAGE_NOT_FOUND", `S3 copy of ${what}: ${srcKey} not found`);
    }
    const params = {
      Bucket: this.bucket,
      Key: this.prefix + dstKey,
      CopySource: `${this.bucket}/${(this.prefix + srcKey).split("/").map(encodeURIComponent).join("/")}`,
      StorageClass: this.storageClass(options.storageClass),
    };
    const partSize = this.options.copyPartSize ?? MAX_COPY_SIZE;
    if (source.size > partSize) return this.copyInParts(params, source.size, partSize, what);
    await this.call("copy", what, (s3) => s3.send(new CopyObjectCommand(params)));
  }

  /** Aborts multipart uploads under `prefix` that a killed writer never completed or aborted. */
  async purgeAbandoned(
    prefix: string,
    olderThanMs: number,
  ): Promise<{ count: number; bytes: number }> {
    const cutoff = Date.now() - olderThanMs;
    let count = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const page = await this.call("list uploads", prefix, (s3) =>
        s3.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.prefix + validatePrefix(prefix),
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        ),
      );
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId || (upload.Initiated?.getTime() ?? 0) >= cutoff)
          continue;
        await this.abortMultipart(upload.Key, upload.UploadId);
        count++;
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
    // S3 does not say how many bytes the parts held without listing each upload's parts.
    return { count, bytes: 0 };
  }

  async close(): Promise<void> {
    this.client?.destroy();
    this.client = undefined;
  }

  private async copyInParts(
    params: { Bucket: string; Key: string; CopySource: string; StorageClass?: StorageClass },
    size: number,
    partSize: number,
    what: string,
  ): Promise<void> {
    const { CopySource, ...target } = params;
    const s3 = this.s3Client();
    let UploadId: string | undefined;
    try {
      ({ UploadId } = await s3.send(new CreateMultipartUploadCommand(target)));
      const parts = Array.from({ length: Math.ceil(size / partSize) }, (_, i) => ({
        PartNumber: i + 1,
        CopySourceRange: `bytes=${i * partSize}-${Math.min(size, (i + 1) * partSize) - 1}`,
        ETag: "",
      }));
      let next = 0;
      const worker = async () => {
        for (let part = parts[next++]; part; part = parts[next++]) {
          const { PartNumber, CopySourceRange } = part;
          const input = { Bucket: target.Bucket, Key: target.Key, UploadId, CopySource };
          const result = await s3.send(
            new UploadPartCopyCommand({ ...input, PartNumber, CopySourceRange }),
          );
          part.ETag = result.CopyPartResult?.ETag ?? "";
        }
      };
      const workers = this.options.queueSize ?? DEFAULT_QUEUE_SIZE;
      await Promise.all(Array.from({ length: workers }, worker));
      const MultipartUpload = {
        Parts: parts.map(({ PartNumber, ETag }) => ({ PartNumber, ETag })),
      };
      const { Bucket, Key } = target;
      await s3.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload }));
    } catch (error) {
      if (UploadId) await this.abortMultipart(target.Key, UploadId);
      throw this.error(error, "copy", what);
    }
  }

  private async abortMultipart(fullKey: string, uploadId: string): Promise<void> {
    await this.s3Client()
      .send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey, UploadId: uploadId }),
      )
      .catch(() => undefined); // already aborted (NoSuchUpload), or unreachable: nothing more to do
  }

  private storageClass(override?: string): StorageClass | undefined {
    return (override ?? this.options.storageClass) as StorageClass | undefined;
  }

  private async call<T>(operation: string, key: string, run: (s3: S3Client) => Promise<T>) {
    try {
      return await run(this.s3Client());
    } catch (error) {
      throw this.error(error, operation, key);
    }
  }

  private error(error: unknown, operation: string, key: string): LifeboatError {
    if (error instanceof LifeboatError) return error;
    const code = s3ErrorCode(error) ?? "Error";
    const status = httpStatus(error);
    let message = error instanceof Error ? error.message : String(error);
    for (const secret of this.secrets) message = message.split(secret).join("***");
    const detail = `${code}${status ? `, HTTP ${status}` : ""}: ${message.slice(0, 300)}`;
    return new LifeboatError(
      classify(error),
      `S3 ${operation} of ${key} at ${this.location} failed (${detail})`,
      { cause: error },
    );
  }
}

/** A pass-through that reports chunk sizes and may fail at the end (flush). */
function counting(onChunk: (bytes: number) => void, atEnd?: () => Error | undefined): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      onChunk(chunk.length);
      done(null, chunk);
    },
    flush: (done) => done(atEnd?.()),
  });
}

const words = (text: string) => new Set(text.split(/\s+/));
const NETWORK_CODES =
  words(`ECONNREFUSED ENOTFOUND EAI_AGAIN ETIMEDOUT ECONNRESET EPIPE ECONNABORTED
  EHOSTUNREACH ENETUNREACH ENETDOWN ERR_STREAM_PREMATURE_CLOSE TimeoutError NetworkingError`);
const TRANSIENT_CODES = words(`SlowDown RequestTimeout InternalError ServiceUnavailable Throttling
  ThrottlingException TooManyRequests`);
const AUTH_CODES = words(`InvalidAccessKeyId SignatureDoesNotMatch InvalidToken ExpiredToken
  TokenRefreshRequired CredentialsProviderError AuthorizationHeaderMalformed`);

/** The S3 error code (`NoSuchKey`), or a Node/SDK error code or name when no response came. */
export function s3ErrorCode(error: unknown): string | undefined {
  const e = error as { Code?: unknown; code?: unknown; name?: unknown } | null;
  for (const value of [e?.Code, e?.code, e?.name]) {
    if (typeof value === "string" && value !== "Error" && value !== "UnknownError") return value;
  }
  return undefined;
}

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

/** Looks through causes and AggregateError members (Node tries IPv4 and IPv6 separately). */
function isNetworkError(error: unknown, depth = 0): boolean {
  if (!error || typeof error !== "object" || depth > 5) return false;
  const e = error as { code?: unknown; name?: unknown; cause?: unknown; errors?: unknown };
  if (NETWORK_CODES.has(String(e.code)) || NETWORK_CODES.has(String(e.name))) return true;
  if (Array.isArray(e.errors) && e.errors.some((x) => isNetworkError(x, depth + 1))) return true;
  return isNetworkError(e.cause, depth + 1);
}

function classify(error: unknown): ErrorCode {
  const code = s3ErrorCode(error) ?? "";
  const status = httpStatus(error);
  if (AUTH_CODES.has(code) || status === 401) return "STORAGE_AUTH";
  if (code === "NoSuchBucket") return "STORAGE_NO_BUCKET";
  if (code === "AccessDenied" || status === 403) return "STORAGE_DENIED";
  if (code === "NoSuchKey" || code === "NotFound" || status === 404) return "STORAGE_NOT_FOUND";
  if (TRANSIENT_CODES.has(code) || status === 429 || (status !== undefined && status >= 500)) {
    return "STORAGE_TRANSIENT";
  }
  if (status === undefined && isNetworkError(error)) return "STORAGE_UNREACHABLE";
  return "STORAGE_IO";
}
