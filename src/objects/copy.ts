import { createHash } from "node:crypto";
import { Transform, type Readable } from "node:stream";
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  AbortMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCopyCommand,
  type StorageClass,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { LifeboatError, toLifeboatError } from "../errors.js";
import { DEFAULT_PART_SIZE, DEFAULT_QUEUE_SIZE } from "../storage/s3.js";
import { bucketError, call, type BucketTarget } from "./client.js";
import { unquote } from "./list.js";

/** User metadata lifeboat adds to copies (S3 returns it lowercased, without `x-amz-meta-`). */
export const META_SHA256 = "lifeboat-sha256";
export const META_SOURCE_ETAG = "lifeboat-source-etag";

const MiB = 1024 * 1024;
/** CopyObject's limit; larger objects are copied part by part. */
const MAX_COPY = 5 * 1024 * MiB;
const COPY_PART = 512 * MiB;
/** Streamed objects up to this size are read whole (one part's worth) so a single PUT can carry
 *  their sha256 and Content-MD5; larger ones are hashed first, then streamed multipart. */
export const SINGLE_PUT_LIMIT = DEFAULT_PART_SIZE;

export interface CopyFrom {
  target: BucketTarget;
  key: string;
  size: number;
  /** Current object: the copy fails if it changed since it was listed. */
  etag?: string;
  /** A specific version instead of the current object. */
  versionId?: string;
}

export interface CopyOutcome {
  mode: "server" | "stream";
  bytes: number;
  sha256?: string;
}

export function copySource(bucket: string, key: string, versionId?: string): string {
  const path = `${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
  return versionId ? `${path}?versionId=${encodeURIComponent(versionId)}` : path;
}

const quoted = (etag: string | undefined) => (etag ? `"${etag}"` : undefined);

/**
 * Makes an old version current again: a copy of it becomes the newest version, keeping its
 * metadata. Nothing is deleted, so the version that was current stays in the history.
 */
export async function copyVersionInPlace(
  target: BucketTarget,
  key: string,
  versionId: string,
  size: number,
): Promise<void> {
  const CopySource = copySource(target.bucket, key, versionId);
  if (size > MAX_COPY) {
    const head = await call(target, "head", (s3) =>
      s3.send(new HeadObjectCommand({ Bucket: target.bucket, Key: key, VersionId: versionId })),
    );
    await copyInParts(target, key, CopySource, size, {
      ...(head.ContentType ? { ContentType: head.ContentType } : {}),
      ...(head.Metadata ? { Metadata: head.Metadata } : {}),
    });
    return;
  }
  await call(
    target,
    "copy version",
    (s3) => s3.send(new CopyObjectCommand({ Bucket: target.bucket, Key: key, CopySource })),
    key,
  );
}

/** Content headers a copy keeps. */
function contentHeaders(source: {
  ContentType?: string;
  CacheControl?: string;
  ContentDisposition?: string;
  ContentEncoding?: string;
  ContentLanguage?: string;
}) {
  const { ContentType, CacheControl, ContentDisposition, ContentEncoding, ContentLanguage } =
    source;
  return JSON.parse(
    JSON.stringify({
      ContentType,
      CacheControl,
      ContentDisposition,
      ContentEncoding,
      ContentLanguage,
    }),
  ) as Record<string, string>;
}

/**
 * Server-side copy to a bucket on the same service: the bytes never pass through this process.
 * A single-part object is copied as it is (one request; its ETag, the MD5, stays equal, which is
 * how later syncs recognise it). A multipart object — or a copy whose ETag came out different —
 * is copied again with `lifeboat-source-etag` in its metadata, since ETags cannot match then.
 */
export async function serverCopy(
  from: CopyFrom,
  to: BucketTarget,
  key: string,
): Promise<CopyOutcome> {
  const CopySource = copySource(from.target.bucket, from.key, from.versionId);
  const storageClass = to.storageClass ? { StorageClass: to.storageClass as StorageClass } : {};
  if (from.etag && !from.etag.includes("-") && from.size <= MAX_COPY) {
    const copied = await call(
      to,
      "copy",
      (s3) =>
        s3.send(
          new CopyObjectCommand({
            Bucket: to.bucket,
            Key: key,
            CopySource,
            CopySourceIfMatch: quoted(from.etag),
            ...storageClass,
          }),
        ),
      key,
    );
    if (unquote(copied.CopyObjectResult?.ETag) === from.etag) {
      return { mode: "server", bytes: from.size };
    }
  }
  const head = await call(
    from.target,
    "head",
    (s3) =>
      s3.send(
        new HeadObjectCommand({
          Bucket: from.target.bucket,
          Key: from.key,
          VersionId: from.versionId,
          IfMatch: quoted(from.etag),
        }),
      ),
    from.key,
  );
  const etag = unquote(head.ETag);
  const size = head.ContentLength ?? from.size;
  const params = {
    ...contentHeaders(head),
    Metadata: { ...head.Metadata, [META_SOURCE_ETAG]: etag },
    ...storageClass,
  };
  if (size > MAX_COPY) {
    await copyInParts(to, key, CopySource, size, params, etag);
  } else {
    await call(
      to,
      "copy",
      (s3) =>
        s3.send(
          new CopyObjectCommand({
            Bucket: to.bucket,
            Key: key,
            CopySource,
            CopySourceIfMatch: quoted(etag),
            MetadataDirective: "REPLACE",
            ...params,
          }),
        ),
      key,
    );
  }
  const recorded = head.Metadata?.[META_SHA256];
  return { mode: "server", bytes: size, ...(recorded ? { sha256: recorded } : {}) };
}

async function copyInParts(
  to: BucketTarget,
  key: string,
  CopySource: string,
  size: number,
  params: Record<string, unknown>,
  etag?: string,
): Promise<void> {
  const Bucket = to.bucket;
  const { UploadId } = await call(to, "start multipart copy", (s3) =>
    s3.send(new CreateMultipartUploadCommand({ Bucket, Key: key, ...params })),
  );
  try {
    const parts: { PartNumber: number; ETag: string }[] = [];
    for (let start = 0, n = 1; start < size; start += COPY_PART, n++) {
      const end = Math.min(size, start + COPY_PART) - 1;
      const result = await to.s3.send(
        new UploadPartCopyCommand({
          Bucket,
          Key: key,
          UploadId,
          PartNumber: n,
          CopySource,
          CopySourceRange: `bytes=${start}-${end}`,
          CopySourceIfMatch: quoted(etag),
        }),
      );
      parts.push({ PartNumber: n, ETag: result.CopyPartResult?.ETag ?? "" });
    }
    await to.s3.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
  } catch (error) {
    await to.s3
      .send(new AbortMultipartUploadCommand({ Bucket, Key: key, UploadId }))
      .catch(() => undefined);
    throw bucketError(error, "multipart copy", to, key);
  }
}

async function openSource(from: CopyFrom) {
  const response = await call(
    from.target,
    "get",
    (s3) =>
      s3.send(
        new GetObjectCommand({
          Bucket: from.target.bucket,
          Key: from.key,
          VersionId: from.versionId,
          IfMatch: quoted(from.etag),
        }),
      ),
    from.key,
  );
  return { response, body: response.Body as Readable };
}

function corrupt(from: CopyFrom, actual: string, recorded: string): LifeboatError {
  return new LifeboatError(
    "OBJECT_CORRUPT",
    `${from.target.location} ${from.key}: content sha256 ${actual} differs from its recorded ${META_SHA256} ${recorded}`,
    {
      hint: "the source object is damaged or was changed without its metadata; check it before copying it again",
    },
  );
}

/** Hashes a stream to its end; fails on a length other than `size`. */
async function sha256Of(body: Readable, size: number, what: string): Promise<string> {
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of body) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  if (bytes !== size) {
    throw new LifeboatError("STORAGE_TRANSIENT", `${what}: read ${bytes} of ${size} bytes`);
  }
  return hash.digest("hex");
}

/**
 * Streams an object from one service to another (GET → PUT), never holding more than one part in
 * memory. The destination gets `lifeboat-sha256` (of the bytes actually sent) and
 * `lifeboat-source-etag`. A large object is hashed in a first pass so its sha256 can go into the
 * upload's metadata; the second pass is checked against it and the upload abandoned (never
 * completed) on any difference.
 */
export async function streamCopy(
  from: CopyFrom,
  to: BucketTarget,
  key: string,
  options: { partSize?: number; queueSize?: number } = {},
): Promise<CopyOutcome> {
  let { response, body } = await openSource(from);
  const size = response.ContentLength ?? from.size;
  const etag = unquote(response.ETag);
  const pinned: CopyFrom = { ...from, etag, size };
  const base = {
    Bucket: to.bucket,
    Key: key,
    ...contentHeaders(response),
    ...(to.storageClass ? { StorageClass: to.storageClass as StorageClass } : {}),
  };
  const metadata = (sha256: string) => ({
    ...response.Metadata,
    [META_SHA256]: sha256,
    [META_SOURCE_ETAG]: etag,
  });

  if (size <= SINGLE_PUT_LIMIT) {
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    if (bytes.length !== size) {
      throw new LifeboatError(
        "STORAGE_TRANSIENT",
        `get of ${from.key}: read ${bytes.length} of ${size} bytes`,
      );
    }
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const recorded = response.Metadata?.[META_SHA256];
    if (recorded && recorded !== sha256) throw corrupt(from, sha256, recorded);
    await call(
      to,
      "put",
      (s3) =>
        s3.send(
          new PutObjectCommand({
            ...base,
            Body: bytes,
            ContentLength: size,
            // Content-MD5 lets the server reject damaged bodies; object-lock buckets require it.
            ContentMD5: createHash("md5").update(bytes).digest("base64"),
            Metadata: metadata(sha256),
          }),
        ),
      key,
    );
    return { mode: "stream", bytes: size, sha256 };
  }

  let expected = response.Metadata?.[META_SHA256];
  if (!expected) {
    expected = await sha256Of(body, size, `get of ${from.key}`);
    ({ response, body } = await openSource(pinned));
  }
  const hash = createHash("sha256");
  let sent = 0;
  let bodyError: Error | undefined;
  const verify = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      sent += chunk.length;
      done(null, chunk);
    },
    flush(done) {
      const actual = hash.digest("hex");
      if (sent === size && actual === expected) return done();
      done(
        sent === size
          ? corrupt(from, actual, expected)
          : new LifeboatError(
              "STORAGE_TRANSIENT",
              `get of ${from.key}: read ${sent} of ${size} bytes`,
            ),
      );
    },
  });
  verify.once("error", (error) => (bodyError ??= error));
  body.once("error", (error) =>
    verify.destroy((bodyError ??= bucketError(error, "get", from.target, from.key))),
  );
  body.pipe(verify);
  const upload = new Upload({
    client: to.s3,
    partSize: options.partSize ?? DEFAULT_PART_SIZE,
    queueSize: options.queueSize ?? DEFAULT_QUEUE_SIZE,
    params: { ...base, Body: verify, Metadata: metadata(expected) },
  });
  try {
    await upload.done();
  } catch (error) {
    body.destroy();
    verify.destroy();
    if (bodyError) throw toLifeboatError(bodyError);
    throw bucketError(error, "upload", to, key);
  }
  if (bodyError) throw toLifeboatError(bodyError);
  return { mode: "stream", bytes: size, sha256: expected };
}

/** sha256 of an object's content (streamed), with its user metadata. */
export async function hashObject(
  target: BucketTarget,
  key: string,
  versionId?: string,
): Promise<{ sha256: string; size: number; metadata: Record<string, string> }> {
  const { response, body } = await openSource({
    target,
    key,
    size: 0,
    ...(versionId ? { versionId } : {}),
  });
  const size = response.ContentLength ?? 0;
  const sha256 = await sha256Of(body, size, `get of ${key}`);
  return { sha256, size, metadata: response.Metadata ?? {} };
}
