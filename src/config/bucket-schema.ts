import { z } from "zod";
import { s3Credentials } from "./common-schema.js";

/** The `buckets:` section: application buckets to protect (see src/objects/). */

const bucketBase = {
  bucket: z.string().min(3).max(63).describe("Bucket name."),
  endpoint: z
    .url()
    .optional()
    .describe("Endpoint URL for S3-compatible services (Ceph, MinIO, Wasabi...); omit for AWS."),
  pathStyle: z
    .boolean()
    .optional()
    .describe("Path-style addressing; default: on when an endpoint is set."),
  credentials: s3Credentials.optional(),
};

const secondaryBucket = z
  .strictObject({
    ...bucketBase,
    bucket: z.string().min(3).max(63).describe("Bucket that receives `bucket sync` copies."),
    region: z.string().min(1).optional().describe("Region; default: the primary's region."),
    storageClass: z
      .string()
      .optional()
      .describe("Storage class of the copies (e.g. STANDARD_IA); default: the service's."),
  })
  .describe(
    "Offsite copy of the bucket (another endpoint, account or region). Omitted connection fields take the primary's values.",
  );

export const bucketSchema = z
  .strictObject({
    ...bucketBase,
    region: z
      .string()
      .min(1)
      .default("eu-west-2")
      .describe("Region of the bucket (signing region)."),
    noncurrentVersionDays: z
      .number()
      .int()
      .min(1)
      .max(36_500)
      .default(90)
      .describe("`bucket protect` expires versions this many days after they stop being current."),
    secondary: secondaryBucket.optional(),
    syncConcurrency: z
      .number()
      .int()
      .min(1)
      .max(256)
      .default(16)
      .describe("Objects copied in parallel by `bucket sync` and `bucket recover`."),
  })
  .describe("An application bucket to protect: versioning, offsite copy, snapshots, restores.");

export type BucketConfig = z.output<typeof bucketSchema>;
