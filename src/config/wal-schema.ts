import { z } from "zod";
import { name } from "./common-schema.js";
import { duration } from "./duration.js";

/** The `wal:` section: continuous archiving and point-in-time recovery (see src/wal/). */

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

export const walSchema = z
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

export type WalConfig = z.output<typeof walSchema>;
