import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { LifeboatError } from "../errors.js";
import type { LifeboatConfig } from "../config/schema.js";
import { encodingFromConfig } from "../engine/files.js";
import type { Repository } from "../repository/repository.js";
import { runBackup, type CommittedBackup } from "../repository/writer.js";
import { TarInspector, type TarEntry } from "../stream/tar.js";
import { onExit, toolFailed } from "../util/process.js";
import type { WalContext } from "../wal/config.js";
import { formatLsn, lsnSegment, parseLsn, segmentName } from "../wal/layout.js";
import { requirePgBin } from "./binaries.js";
import { childEnv, libpqEnv, withClient } from "./connection.js";

/**
 * Physical base backups: pg_basebackup over the replication protocol writes one tar to stdout
 * (-D - -Ft), which flows through a tar inspector (per-file sha256, backup_manifest,
 * backup_label, pg_control) into the repository's compress + encrypt stages. Nothing touches the
 * local disk. At the end every file is checked against PostgreSQL's own backup manifest.
 */

export const BASE_KIND = "base";
export const BASE_OBJECT = "base.tar";
export const MANIFEST_OBJECT = "backup_manifest";

export interface BaseBackupOptions {
  context: WalContext;
  config: LifeboatConfig;
  repositories: Repository[];
  labels?: Record<string, string>;
  /** fetch (default): the backup carries the WAL it needs; none: that WAL comes from the archive. */
  walMethod?: "fetch" | "none";
  /** Hash every file and compare with backup_manifest (default true). */
  verify?: boolean;
  log?: (message: string) => void;
}

export interface BaseBackupDetails {
  database: string;
  serverVersion: string;
  systemIdentifier: string;
  timeline: number;
  startLsn: string;
  stopLsn: string;
  walStart: string;
  walStop: string;
  segmentSize: number;
  startTime?: string;
  stopTime: string;
  walMethod: "fetch" | "none";
  walIncluded: boolean;
  label: string;
  files: number;
  verified: { against: string; files: number } | null;
}

interface ServerFacts {
  major: number;
  version: string;
  segmentSize: number;
  tablespaces: number;
}

export async function backupBase(options: BaseBackupOptions): Promise<CommittedBackup> {
  const { context } = options;
  const server = await serverFacts(context);
  if (server.tablespaces > 0) {
    throw new LifeboatError(
      "USAGE",
      `the cluster has ${server.tablespaces} tablespace(s); \`backup base\` streams a single tar and supports only pg_default/pg_global`,
      {
        hint: "take a file-level backup of the tablespace directories until tablespace support lands",
      },
    );
  }
  const walMethod = options.walMethod ?? "fetch";
  const verify = options.verify ?? true;
  const tool = requirePgBin("pg_basebackup", { major: server.major, allowNewer: true });
  return runBackup(
    options.repositories,
    {
      kind: BASE_KIND,
      source: context.databaseName,
      labels: options.labels ?? {},
      encoding: encodingFromConfig(options.config),
      operation: `backup base ${context.databaseName}`,
    },
    async (session) => {
      const label = `lifeboat ${session.id}`;
      const args = ["-D", "-", "-F", "t", "-X", walMethod, "-c", "fast", "-l", label, "-v", "-w"];
      if (verify) args.push("--manifest-checksums=SHA256");
      const child = spawn(tool.path, args, {
        env: childEnv(libpqEnv(context.replication, "replication")),
        stdio: ["ignore", "pipe", "pipe"],
      });
      const unregister = onExit(() => child.kill("SIGTERM"));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
        (resolve, reject) => {
          child.once("error", reject);
          child.once("close", (code, signal) => resolve({ code, signal }));
        },
      );
      let stderr = "";
      let stopSeenAt: Date | undefined;
      child.stderr.setEncoding("utf8").on("data", (text: string) => {
        stderr += text;
        if (!stopSeenAt && /write-ahead log end point/.test(stderr)) stopSeenAt = new Date();
        options.log?.(text.trimEnd());
      });
      const inspector = new TarInspector({
        hash: verify,
        capture: (name) =>
          name === MANIFEST_OBJECT
            ? 256 << 20
            : name === "backup_label" || name === "PG_VERSION"
              ? 65_536
              : name === "global/pg_control"
                ? 512
                : undefined,
      });
      try {
        await session.addObject(BASE_OBJECT, child.stdout.pipe(inspector), {
          role: "base",
          contentType: "application/x-tar",
        });
      } catch (error) {
        child.kill("SIGTERM");
        throw error;
      } finally {
        unregister();
      }
      const result = await exited;
      if (result.code !== 0)
        throw toolFailed(tool.path, { ...result, stderr }, { context: "base backup" });
      if (!inspector.complete) {
        throw new LifeboatError(
          "TOOL_FAILED",
          "pg_basebackup ended without finishing the tar archive",
        );
      }
      const stopTime = stopSeenAt ?? new Date();
      const manifestBytes = inspector.captured.get(MANIFEST_OBJECT);
      const manifest = manifestBytes ? parseBackupManifest(manifestBytes) : undefined;
      const verified =
        verify && manifest ? verifyAgainstManifest(manifest, inspector.entries) : null;
      if (manifestBytes) {
        await session.addObject(MANIFEST_OBJECT, Readable.from([manifestBytes]), {
          role: "manifest",
          contentType: "application/json",
        });
      }
      const range = walRange(manifest, stderr);
      const control = inspector.captured.get("global/pg_control");
      const labelText = inspector.captured.get("backup_label")?.toString("utf8") ?? "";
      const startTime = /^START TIME: (.+)$/m.exec(labelText)?.[1];
      const details: BaseBackupDetails = {
        database: context.databaseName,
        serverVersion: server.version,
        systemIdentifier:
          control && control.length >= 8 ? control.readBigUInt64LE(0).toString() : "unknown",
        timeline: range.timeline,
        startLsn: formatLsn(range.start),
        stopLsn: formatLsn(range.stop),
        walStart: segmentName(
          range.timeline,
          lsnSegment(range.start, server.segmentSize),
          server.segmentSize,
        ),
        walStop: segmentName(
          range.timeline,
          lsnSegment(range.stop, server.segmentSize),
          server.segmentSize,
        ),
        segmentSize: server.segmentSize,
        ...(startTime
          ? { startTime: new Date(startTime.replace(" UTC", "Z").replace(" ", "T")).toISOString() }
          : {}),
        stopTime: stopTime.toISOString(),
        walMethod,
        walIncluded: walMethod === "fetch",
        label,
        files: inspector.entries.filter((e) => e.type === "file").length,
        verified,
      };
      return details as unknown as Record<string, unknown>;
    },
  );
}

async function serverFacts(context: WalContext): Promise<ServerFacts> {
  return withClient(context.connection, async (client) => {
    const { rows } = await client.query<{
      num: number;
      version: string;
      seg: string;
      tablespaces: number;
    }>(
      `SELECT current_setting('server_version_num')::int AS num,
              current_setting('server_version') AS version,
              (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS seg,
              (SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global'))::int AS tablespaces`,
    );
    const row = rows[0]!;
    return {
      major: Math.floor(row.num / 10_000),
      version: row.version,
      segmentSize: Number(row.seg),
      tablespaces: row.tablespaces,
    };
  });
}

interface BackupManifest {
  files: { path: string; size: number; algorithm?: string; checksum?: string }[];
  walRanges: { timeline: number; start: bigint; end: bigint }[];
}

/** PostgreSQL's backup_manifest (format version 1), with its own SHA-256 checked. */
export function parseBackupManifest(bytes: Buffer): BackupManifest {
  const textValue = bytes.toString("utf8");
  const at = textValue.lastIndexOf('"Manifest-Checksum"');
  const cut = textValue.lastIndexOf("\n", at);
  const json = JSON.parse(textValue) as {
    Files?: { Path: string; Size: number; "Checksum-Algorithm"?: string; Checksum?: string }[];
    "WAL-Ranges"?: { Timeline: number; "Start-LSN": string; "End-LSN": string }[];
    "Manifest-Checksum"?: string;
  };
  const actual = createHash("sha256")
    .update(textValue.slice(0, cut + 1))
    .digest("hex");
  if (at < 0 || json["Manifest-Checksum"] !== actual) {
    throw new LifeboatError("OBJECT_CORRUPT", "backup_manifest fails its own checksum");
  }
  return {
    files: (json.Files ?? []).map((f) => ({
      path: f.Path,
      size: f.Size,
      ...(f["Checksum-Algorithm"] ? { algorithm: f["Checksum-Algorithm"] } : {}),
      ...(f.Checksum ? { checksum: f.Checksum } : {}),
    })),
    walRanges: (json["WAL-Ranges"] ?? []).map((r) => ({
      timeline: r.Timeline,
      start: parseLsn(r["Start-LSN"]),
      end: parseLsn(r["End-LSN"]),
    })),
  };
}

/** Every file the server listed must have arrived with the same size and SHA-256. */
export function verifyAgainstManifest(
  manifest: BackupManifest,
  entries: readonly TarEntry[],
): { against: string; files: number } {
  const byName = new Map(entries.map((e) => [e.name, e]));
  const problems: string[] = [];
  for (const file of manifest.files) {
    const entry = byName.get(file.path);
    if (!entry) problems.push(`${file.path} is missing`);
    else if (entry.size !== file.size)
      problems.push(`${file.path} has ${entry.size} bytes, manifest ${file.size}`);
    else if (file.algorithm === "SHA256" && entry.sha256 !== file.checksum)
      problems.push(`${file.path} checksum differs`);
  }
  if (problems.length > 0) {
    throw new LifeboatError(
      "OBJECT_CORRUPT",
      `base backup does not match PostgreSQL's backup_manifest: ${problems.slice(0, 5).join("; ")}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ""}`,
    );
  }
  return { against: MANIFEST_OBJECT, files: manifest.files.length };
}

function walRange(
  manifest: BackupManifest | undefined,
  stderr: string,
): { timeline: number; start: bigint; stop: bigint } {
  const first = manifest?.walRanges[0];
  const last = manifest?.walRanges[manifest.walRanges.length - 1];
  if (first && last) return { timeline: last.timeline, start: first.start, stop: last.end };
  const start = /write-ahead log start point: (\S+) on timeline (\d+)/.exec(stderr);
  const stop = /write-ahead log end point: (\S+)/.exec(stderr);
  if (!start || !stop)
    throw new LifeboatError("TOOL_FAILED", "pg_basebackup did not report its WAL range");
  return { timeline: Number(start[2]), start: parseLsn(start[1]!), stop: parseLsn(stop[1]!) };
}
