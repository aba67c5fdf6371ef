import { z } from "zod";
import { duration } from "./duration.js";
import { name, s3Credentials } from "./common-schema.js";
import { walSchema } from "./wal-schema.js";
import { bucketSchema } from "./bucket-schema.js";
import { monitoringSchema, notificationsSchema } from "./monitoring-schema.js";

/**
 * The one configuration schema. Types, defaults and descriptions live here only: the JSON Schema
 * (`schema/lifeboat.schema.json`) and `docs/configuration.md` are generated from it, and a test
 * fails when they drift. Objects are strict so a misspelt key is an error, not a silent default.
 */

export { DURATION_PATTERN, durationSeconds } from "./duration.js";

const localRepository = z
  .strictObject({
    type: z.literal("local"),
    path: z.string().min(1).describe("Folder that holds the repository; created by `repo init`."),
  })
  .describe("A repository in a local (or mounted) folder.");

const s3Repository = z
  .strictObject({
    type: z.literal("s3"),
    endpoint: z
      .url()
      .optional()
      .describe("Endpoint URL for S3-compatible services (Ceph, MinIO, Wasabi...); omit for AWS."),
    region: z
      .string()
      .min(1)
      .default("eu-west-2")
      .describe("Region of the bucket (signing region)."),
    bucket: z.string().min(3).max(63).describe("Bucket that holds the repository."),
    prefix: z.string().default("").describe("Key prefix inside the bucket, e.g. `lifeboat/`."),
    pathStyle: z
      .boolean()
      .default(false)
      .describe("Use path-style addressing (needed by most self-hosted S3 servers)."),
    credentials: s3Credentials.optional(),
    storageClass: z
      .string()
      .optional()
      .describe(
        "Storage class for backup objects (e.g. STANDARD_IA); archives may choose their own.",
      ),
    partSizeMiB: z
      .number()
      .int()
      .min(5)
      .max(512)
      .default(8)
      .describe(
        "Multipart part size in MiB; memory per upload is about partSize x (queueSize + 1).",
      ),
    queueSize: z
      .number()
      .int()
      .min(1)
      .max(32)
      .default(4)
      .describe("Parts uploaded in parallel per object."),
  })
  .describe("A repository in an S3-compatible bucket.");

export const repositorySchema = z.discriminatedUnion("type", [localRepository, s3Repository]);

const storageTuning = z
  .strictObject({
    retryAttempts: z
      .number()
      .int()
      .min(1)
      .max(20)
      .default(5)
      .describe("Attempts per storage operation."),
    retryBaseDelayMs: z
      .number()
      .int()
      .min(1)
      .default(200)
      .describe("First retry delay; doubles each time."),
    concurrency: z
      .number()
      .int()
      .min(1)
      .max(256)
      .default(16)
      .describe("Storage operations in flight."),
  })
  .describe("Retry and concurrency settings applied to every repository.");

const encryption = z
  .strictObject({
    recipients: z
      .array(
        z
          .string()
          .regex(/^age1[02-9ac-hj-np-z]{58}$/, { message: "expected an age recipient (age1...)" }),
      )
      .default([])
      .describe(
        "age X25519 recipients (public keys) that can decrypt backups. Backup hosts need only these; print one with `lifeboat key generate`.",
      ),
    identityFile: z
      .string()
      .optional()
      .describe(
        "Identity file (private key) used by restore and verify. Keep it off backup-only hosts.",
      ),
    disabled: z
      .boolean()
      .default(false)
      .describe(
        "Store data unencrypted. Only for throwaway tests: the plan requires encryption at rest.",
      ),
  })
  .describe("Client-side encryption in the age format.");

const compression = z
  .strictObject({
    algorithm: z
      .enum(["zstd", "gzip", "none"])
      .default("zstd")
      .describe("zstd (default), gzip, or none."),
    level: z
      .number()
      .int()
      .min(1)
      .max(19)
      .optional()
      .describe("Compression level (zstd 1-19, gzip 1-9)."),
    threads: z
      .number()
      .int()
      .min(0)
      .max(16)
      .default(1)
      .describe(
        "zstd worker threads besides the main one (0: compress on the main thread). One worker lets compression overlap hashing and encryption; each adds ~35 MiB.",
      ),
  })
  .describe("Compression applied before encryption.");

const keyTable = z.union([
  z.string().min(1),
  z.strictObject({
    table: z.string().min(1).describe("Table name, optionally schema-qualified."),
    timestampColumn: z
      .string()
      .optional()
      .describe(
        "Column whose maximum is recorded; default: created_at, then updated_at, if present.",
      ),
  }),
]);

const database = z
  .strictObject({
    host: z.string().default("127.0.0.1").describe("Server host name or address."),
    port: z.number().int().min(1).max(65535).default(5432).describe("Server port."),
    user: z
      .string()
      .default("postgres")
      .describe("Role to connect as (needs read access; superuser for globals)."),
    database: z.string().min(1).describe("Database to back up."),
    password: z
      .string()
      .optional()
      .describe("Password; write `${ENV_VAR}`. Passed to tools via the environment only."),
    passwordFile: z
      .string()
      .optional()
      .describe("A libpq passfile (PGPASSFILE) instead of a password."),
    sslmode: z
      .enum(["disable", "allow", "prefer", "require", "verify-ca", "verify-full"])
      .optional()
      .describe("libpq sslmode; use verify-full across networks (encryption in transit)."),
    format: z
      .enum(["custom", "directory"])
      .default("custom")
      .describe(
        "pg_dump format: custom (one stream) or directory (parallel, for large databases).",
      ),
    jobs: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(2)
      .describe(
        "Parallel jobs for directory-format dumps and their restores (custom-format restores stream with one job unless --jobs is given).",
      ),
    globals: z
      .boolean()
      .default(true)
      .describe("Also back up roles, memberships and grants (pg_dumpall --globals-only)."),
    keyTables: z
      .array(keyTable)
      .default(["users", "clients", "kyc_verifications", "onboarding_sessions", "activity_logs"])
      .describe(
        "Tables whose row counts and latest timestamps are recorded and validated after restores.",
      ),
    binDir: z
      .string()
      .optional()
      .describe("PostgreSQL client binaries; default: matched to the server's major version."),
    checks: z
      .array(
        z.strictObject({
          name: z.string().min(1).describe("What the check proves, shown in reports."),
          sql: z
            .string()
            .min(1)
            .describe(
              "A query returning one row whose first column is true (or a non-zero number).",
            ),
        }),
      )
      .default([])
      .describe(
        "SQL assertions run against every restored copy, after row counts and timestamps are compared.",
      ),
  })
  .describe("A PostgreSQL database to protect.");

const smokeCheck = z.strictObject({
  url: z.url().describe("URL that must answer once the application is back."),
  expectStatus: z
    .number()
    .int()
    .min(100)
    .max(599)
    .optional()
    .describe("Expected status; default: any 2xx."),
});

const application = z
  .strictObject({
    stopCommand: z
      .string()
      .optional()
      .describe("Shell command that stops the application before an in-place restore."),
    startCommand: z
      .string()
      .optional()
      .describe("Shell command that starts it again after a validated restore."),
    smokeChecks: z
      .array(smokeCheck)
      .default([])
      .describe("HTTP checks run after the application starts."),
    hookTimeout: duration("Time allowed for each hook and smoke check").default("5m"),
  })
  .describe(
    "The application around the database: hooks and smoke checks used by in-place restores and drills.",
  );

const objectives = z
  .strictObject({
    rto: duration("Recovery time objective: maximum downtime after a disaster").default("4h"),
    rpo: duration("Recovery point objective: maximum data loss").default("1h"),
  })
  .describe("Recovery objectives the checks and drills measure against.");

const retention = z
  .strictObject({
    keepDays: z
      .number()
      .int()
      .min(0)
      .default(30)
      .describe("Keep every backup younger than this many days."),
    keepLast: z.number().int().min(0).optional().describe("Always keep this many newest backups."),
    daily: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe("Keep the newest backup of each of this many days."),
    weekly: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe("Keep the newest backup of each of this many ISO weeks."),
    monthly: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe("Keep the newest backup of each of this many months."),
    yearly: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe("Keep the newest backup of each of this many years."),
  })
  .describe("Which backups prune keeps (applied per repository and per source).");

export const configSchema = z
  .strictObject({
    version: z.literal(1).default(1).describe("Configuration format version."),
    repositories: z
      .record(name, repositorySchema)
      .refine((r) => Object.keys(r).length > 0, { message: "define at least one repository" })
      .describe("Where backups are stored, by name. Backups go to every repository listed."),
    storage: storageTuning.prefault({}),
    encryption: encryption.prefault({}),
    compression: compression.prefault({}),
    databases: z.record(name, database).default({}).describe("PostgreSQL databases, by name."),
    buckets: z.record(name, bucketSchema).default({}).describe("Application buckets, by name."),
    objectives: objectives.prefault({}),
    retention: retention.prefault({}),
    wal: walSchema.optional(),
    application: application.prefault({}),
    monitoring: monitoringSchema.prefault({}),
    notifications: notificationsSchema.prefault({}),
  })
  .refine((c) => !c.wal || c.wal.database in c.databases, {
    message: "must name a database defined under `databases:`",
    path: ["wal", "database"],
  })
  .refine((c) => c.encryption.disabled || c.encryption.recipients.length > 0, {
    message: "list at least one recipient (or set disabled: true for throwaway tests)",
    path: ["encryption", "recipients"],
  })
  .describe("lifeboat configuration (lifeboat.yaml).");

export type LifeboatConfig = z.output<typeof configSchema>;
export type RepositoryConfig = z.output<typeof repositorySchema>;
export type DatabaseConfig = z.output<typeof database>;
export type RetentionConfig = z.output<typeof retention>;
export type { WalConfig } from "./wal-schema.js";
export type { BucketConfig } from "./bucket-schema.js";
