import { z } from "zod";
import { duration } from "./duration.js";
import { monitoringSchema, notificationsSchema } from "./monitoring-schema.js";

/**
 * The one configuration schema. Types, defaults and descriptions live here only: the JSON Schema
 * (`schema/lifeboat.schema.json`) and `docs/configuration.md` are generated from it, and a test
 * fails when they drift. Objects are strict so a misspelt key is an error, not a silent default.
 */

export { DURATION_PATTERN, durationSeconds } from "./duration.js";

const NAME_PATTERN = /^[a-z][a-z0-9_-]{0,62}$/;
const name = z.string().regex(NAME_PATTERN, {
  message: "expected a lowercase name (letters, digits, - and _), starting with a letter",
});

const localRepository = z
  .strictObject({
    type: z.literal("local"),
    path: z.string().min(1).describe("Folder that holds the repository; created by `repo init`."),
  })
  .describe("A repository in a local (or mounted) folder.");

const s3Credentials = z
  .strictObject({
    accessKeyId: z.string().min(1).describe("Access key id; write `${ENV_VAR}`, not the value."),
    secretAccessKey: z
      .string()
      .min(1)
      .describe("Secret access key; write `${ENV_VAR}`, not the value."),
    sessionToken: z.string().min(1).optional().describe("Session token for temporary credentials."),
  })
  .describe(
    "Static credentials. Omit to use the AWS default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, instance roles).",
  );

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

const walReplication = z
  .strictObject({
    host: z
      .string()
      .optional()
      .describe("Host for replication connections; default: the database's."),
    port: z.number().int().min(1).max(65535).optional().describe("Port; default: the database's."),
    user: z
      .string()
      .optional()
      .describe("Role with the REPLICATION attribute; default: the database's user."),
    password: z.string().optional().describe("Password; write `${ENV_VAR}`."),
    passwordFile: z.string().optional().describe("A libpq passfile instead of a password."),
  })
  .describe(
    "Replication connection (base backups and streaming) when it differs from the database's.",
  );

const wal = z
  .strictObject({
    database: name.describe(
      "The configured database (a key of `databases`) whose cluster's WAL is archived; its connection is used for SQL.",
    ),
    mode: z
      .enum(["archive", "stream"])
      .default("archive")
      .describe(
        "archive: PostgreSQL's archive_command hands over each finished segment (exposure up to archiveTimeout). stream: `lifeboat wal stream` receives WAL over a replication slot and uploads partial segments (exposure: seconds).",
      ),
    spoolDir: z
      .string()
      .optional()
      .describe(
        "Local queue of segments waiting for upload; default /var/lib/lifeboat/spool/<database>. Must be writable by the server's OS user.",
      ),
    spoolMaxSegments: z
      .number()
      .int()
      .min(1)
      .default(64)
      .describe(
        "When this many segments wait in the spool, `wal push` fails so PostgreSQL keeps WAL in pg_wal and retries.",
      ),
    archiveTimeout: duration(
      "archive_timeout set by `setup wal`: the longest a finished write waits to be archived",
    ).default("60s"),
    keep: duration("WAL kept beyond what retained base backups need").default("7d"),
    slot: z
      .string()
      .regex(/^[a-z0-9_]{1,63}$/, { message: "expected a replication slot name ([a-z0-9_])" })
      .default("lifeboat")
      .describe("Physical replication slot used by `wal stream`."),
    uploadConcurrency: z
      .number()
      .int()
      .min(1)
      .max(32)
      .default(4)
      .describe("Segments uploaded in parallel from the spool."),
    prefetch: z
      .number()
      .int()
      .min(0)
      .max(64)
      .default(8)
      .describe("Segments fetched ahead of PostgreSQL during recovery."),
    partialInterval: duration(
      "Stream mode: how often the segment being written is uploaded",
    ).default("2s"),
    replication: walReplication.optional(),
  })
  .describe("Continuous WAL archiving and point-in-time recovery for one PostgreSQL cluster.");

const objectives = z
  .strictObject({
    rto: duration("Recovery time objective: maximum downtime after a disaster").default("4h"),
    rpo: duration("Recovery point objective: maximum data loss").default("1h"),
  })
  .describe("Recovery objectives the checks and drills measure against.");

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

const bucket = z
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
    buckets: z.record(name, bucket).default({}).describe("Application buckets, by name."),
    objectives: objectives.prefault({}),
    retention: retention.prefault({}),
    wal: wal.optional(),
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
export type WalConfig = z.output<typeof wal>;
export type BucketConfig = z.output<typeof bucket>;
