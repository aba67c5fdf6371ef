import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { LifeboatError } from "../errors.js";
import { quoteIdent, withClient } from "../postgres/connection.js";
import { sealDocument } from "../repository/canonical.js";
import type { Repository } from "../repository/repository.js";
import { writeSmall } from "../storage/text.js";
import { archiveCommand, archiveTimeoutSeconds, type WalContext } from "./config.js";
import { parseWalName, restorePointKey } from "./layout.js";
import { readWalRecord } from "./push.js";

/**
 * `setup wal` (the server settings continuous archiving needs, printed or applied with ALTER
 * SYSTEM), `check wal` (settings right, and a forced segment switch arrives in every
 * repository) and `restore-point create`.
 */

export interface WalSetting {
  name: string;
  value: string;
  why: string;
  current?: string;
  ok?: boolean;
  /** The server must restart before the value takes effect. */
  pendingRestart?: boolean;
}

export function desiredWalSettings(context: WalContext, configFile: string): WalSetting[] {
  const settings: WalSetting[] = [
    { name: "wal_level", value: "replica", why: "WAL must carry enough to rebuild the cluster" },
  ];
  if (context.wal.mode === "archive") {
    settings.push(
      { name: "archive_mode", value: "on", why: "hand every finished segment to archive_command" },
      {
        name: "archive_command",
        value: archiveCommand(context, configFile),
        why: "queue the segment in the spool; the uploader sends it to every repository",
      },
      {
        name: "archive_timeout",
        value: `${Math.round(archiveTimeoutSeconds(context.wal))}s`,
        why: "switch segments at least this often, bounding data loss (the RPO) on a quiet server",
      },
    );
  }
  settings.push({
    name: "max_wal_senders",
    value: "10",
    why: "base backups (and `wal stream`) use replication connections",
  });
  return settings;
}

const SATISFIED: Record<string, (current: string, wanted: string) => boolean> = {
  wal_level: (c) => c === "replica" || c === "logical",
  archive_mode: (c) => c === "on" || c === "always",
  archive_timeout: (c, w) => Number(c) > 0 && Number(c) <= Number.parseInt(w, 10),
  max_wal_senders: (c) => Number(c) >= 3,
  // Any lifeboat push will do: the spool or config path may legitimately differ per host.
  archive_command: (c) => /wal-push\.js\b|\bwal push\b/.test(c),
};

export async function inspectWalSettings(
  client: pg.Client,
  wanted: WalSetting[],
): Promise<WalSetting[]> {
  const { rows } = await client.query<{ name: string; setting: string; pending_restart: boolean }>(
    "SELECT name, setting, pending_restart FROM pg_settings WHERE name = ANY($1)",
    [wanted.map((s) => s.name)],
  );
  return wanted.map((setting) => {
    const row = rows.find((r) => r.name === setting.name);
    const current = row?.setting ?? "";
    const check = SATISFIED[setting.name] ?? ((c: string, w: string) => c === w);
    return {
      ...setting,
      current,
      ok: check(current, setting.value) && !row?.pending_restart,
      pendingRestart: Boolean(row?.pending_restart),
    };
  });
}

export interface SetupResult {
  settings: WalSetting[];
  applied: string[];
  restartNeeded: boolean;
  slot?: { name: string; created: boolean };
}

export async function setupWal(
  context: WalContext,
  configFile: string,
  apply: boolean,
): Promise<SetupResult> {
  const wanted = desiredWalSettings(context, configFile);
  return withClient(context.connection, async (client) => {
    const applied: string[] = [];
    let slot: SetupResult["slot"];
    if (apply) {
      for (const setting of await inspectWalSettings(client, wanted)) {
        if (
          setting.ok ||
          (setting.current !== undefined &&
            SATISFIED[setting.name]?.(setting.current, setting.value))
        )
          continue;
        await client.query(
          `ALTER SYSTEM SET ${quoteIdent(setting.name)} = ${literal(setting.value)}`,
        );
        applied.push(setting.name);
      }
      await client.query("SELECT pg_reload_conf()");
      if (context.wal.mode === "stream") slot = await ensureSlot(client, context.wal.slot);
      await sleep(300); // the reload is asynchronous; pending_restart shows up once it is done
    }
    const settings = await inspectWalSettings(client, wanted);
    return {
      settings,
      applied,
      restartNeeded: settings.some((s) => s.pendingRestart),
      ...(slot ? { slot } : {}),
    };
  });
}

export async function ensureSlot(
  client: pg.Client,
  name: string,
): Promise<{ name: string; created: boolean }> {
  const { rows } = await client.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", [
    name,
  ]);
  if (rows.length > 0) return { name, created: false };
  await client.query("SELECT pg_create_physical_replication_slot($1, true)", [name]);
  return { name, created: true };
}

function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

export interface SwitchResult {
  segment: string;
  lsn: string;
  /** How long it took to appear in every repository. */
  arrivedAfterMs: number;
  repositories: string[];
}

/**
 * Writes a little WAL, forces a segment switch and waits until the finished segment is
 * committed in every repository: proof that archiving works end to end, and its latency.
 */
export async function switchAndWait(
  context: WalContext,
  repositories: Repository[],
  timeoutMs: number,
): Promise<SwitchResult> {
  const { segment, lsn } = await withClient(context.connection, async (client) => {
    // pg_switch_wal() does nothing when no WAL was written since the last switch.
    await client.query("BEGIN");
    await client.query("SELECT txid_current()");
    await client.query("COMMIT");
    const { rows } = await client.query<{ segment: string; lsn: string }>(
      "SELECT pg_walfile_name(lsn) AS segment, lsn::text FROM pg_switch_wal() AS lsn",
    );
    return rows[0]!;
  });
  const name = parseWalName(segment)!;
  const started = Date.now();
  const waiting = new Set(repositories.map((r) => r.name));
  while (waiting.size > 0) {
    for (const repository of repositories) {
      if (!waiting.has(repository.name)) continue;
      const record = await readWalRecord(repository, name).catch(() => undefined);
      if (record) waiting.delete(repository.name);
    }
    if (waiting.size === 0) break;
    if (Date.now() - started > timeoutMs) {
      throw new LifeboatError(
        "WAL_NOT_FOUND",
        `segment ${segment} (switched at ${lsn}) did not reach ${[...waiting].map((n) => `"${n}"`).join(", ")} within ${Math.round(timeoutMs / 1000)} s`,
        { hint: "see `lifeboat wal status` and the uploader log in the spool directory" },
      );
    }
    await sleep(250);
  }
  return {
    segment,
    lsn,
    arrivedAfterMs: Date.now() - started,
    repositories: repositories.map((r) => r.name),
  };
}

export interface RestorePointResult {
  name: string;
  lsn: string;
  timeline: number;
  createdAt: string;
  recordedIn: string[];
}

/** pg_create_restore_point, recorded in the repositories so `restore pitr --name` can pick a base backup. */
export async function createRestorePoint(
  context: WalContext,
  repositories: Repository[],
  name: string,
  switchWal: boolean,
): Promise<RestorePointResult> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) {
    throw new LifeboatError("USAGE", `restore point name "${name}" is not usable`, {
      hint: "use letters, digits, '.', '_' and '-' (at most 63)",
    });
  }
  const created = await withClient(context.connection, async (client) => {
    const { rows } = await client.query<{ lsn: string; segment: string; at: Date }>(
      "SELECT lsn::text, pg_walfile_name(lsn) AS segment, now() AS at FROM pg_create_restore_point($1) AS lsn",
      [name],
    );
    // Archive the segment now, so the point is recoverable before archive_timeout passes.
    if (switchWal) await client.query("SELECT pg_switch_wal()");
    return rows[0]!;
  });
  const record = {
    format: "lifeboat-restore-point",
    version: 1,
    name,
    lsn: created.lsn,
    timeline: Number.parseInt(created.segment.slice(0, 8), 16),
    createdAt: created.at.toISOString(),
    database: context.databaseName,
  };
  const recordedIn: string[] = [];
  for (const repository of repositories) {
    await writeSmall(repository.storage, restorePointKey(name), sealDocument(record));
    recordedIn.push(repository.name);
  }
  return {
    name,
    lsn: record.lsn,
    timeline: record.timeline,
    createdAt: record.createdAt,
    recordedIn,
  };
}
