import { LifeboatError } from "../errors.js";
import type { BaseBackupPosition } from "./chain.js";
import { formatLsn, isLsn, parseLsn } from "./layout.js";

/**
 * Restore targets and the choice of base backup, pure. A base backup can serve a target only if
 * it became consistent at or before it: PostgreSQL refuses to stop recovery earlier.
 */

export type PitrTarget =
  | { kind: "time"; time: string }
  | { kind: "lsn"; lsn: string }
  | { kind: "name"; name: string; lsn?: string }
  | { kind: "latest" };

export function parseTarget(options: {
  time?: string;
  lsn?: string;
  name?: string;
  latest?: boolean;
}): PitrTarget {
  const given = [options.time, options.lsn, options.name, options.latest || undefined].filter(
    (v) => v !== undefined,
  );
  if (given.length !== 1) {
    throw new LifeboatError("USAGE", "give exactly one of --time, --lsn, --name or --latest");
  }
  if (options.time !== undefined) {
    const parsed = Date.parse(options.time);
    // A time without a zone would be read in the server's zone: refuse the ambiguity.
    if (Number.isNaN(parsed) || !/(Z|[+-]\d{2}:?\d{2})$/i.test(options.time.trim())) {
      throw new LifeboatError("USAGE", `--time ${options.time} is not an ISO time with a zone`, {
        hint: "e.g. 2026-11-26T14:03:00Z or 2026-11-26T14:03:00+00:00",
      });
    }
    return { kind: "time", time: new Date(parsed).toISOString() };
  }
  if (options.lsn !== undefined) {
    if (!isLsn(options.lsn))
      throw new LifeboatError("USAGE", `--lsn ${options.lsn} is not an LSN such as 0/3000060`);
    return { kind: "lsn", lsn: formatLsn(parseLsn(options.lsn)) };
  }
  if (options.name !== undefined) return { kind: "name", name: options.name };
  return { kind: "latest" };
}

export interface BaseChoice<T extends BaseBackupPosition> {
  base: T;
  reason: string;
}

/** The newest base backup consistent before the target (or the one asked for). */
export function chooseBaseBackup<T extends BaseBackupPosition>(
  candidates: readonly T[],
  target: PitrTarget,
  backupId?: string,
): BaseChoice<T> {
  if (backupId) {
    const asked = candidates.find((c) => c.id === backupId);
    if (!asked) throw new LifeboatError("BACKUP_NOT_FOUND", `no base backup ${backupId}`);
    return { base: asked, reason: "chosen with --backup" };
  }
  const newestFirst = [...candidates].sort((a, b) =>
    a.stopLsn < b.stopLsn ? 1 : a.stopLsn > b.stopLsn ? -1 : 0,
  );
  if (newestFirst.length === 0) {
    throw new LifeboatError("BACKUP_NOT_FOUND", "no base backup to start from", {
      hint: "take one with `lifeboat backup base`",
    });
  }
  const earliest = newestFirst[newestFirst.length - 1]!;
  const tooEarly = (what: string) =>
    new LifeboatError(
      "BACKUP_NOT_FOUND",
      `no base backup was consistent before ${what}; the earliest recoverable point is ${formatLsn(earliest.stopLsn)} at ${earliest.stopTime}`,
      { hint: "choose a later target" },
    );
  switch (target.kind) {
    case "latest":
      return { base: newestFirst[0]!, reason: "newest base backup" };
    case "time": {
      const at = Date.parse(target.time);
      const base = newestFirst.find((c) => Date.parse(c.stopTime) <= at);
      if (!base) throw tooEarly(target.time);
      return { base, reason: `newest base backup consistent before ${target.time}` };
    }
    case "lsn": {
      const lsn = parseLsn(target.lsn);
      const base = newestFirst.find((c) => c.stopLsn <= lsn);
      if (!base) throw tooEarly(target.lsn);
      return { base, reason: `newest base backup consistent before ${target.lsn}` };
    }
    case "name": {
      if (!target.lsn) {
        return {
          base: newestFirst[0]!,
          reason: `restore point "${target.name}" was not made by lifeboat (position unknown): newest base backup`,
        };
      }
      const lsn = parseLsn(target.lsn);
      const base = newestFirst.find((c) => c.stopLsn <= lsn);
      if (!base) throw tooEarly(`restore point "${target.name}" (${target.lsn})`);
      return {
        base,
        reason: `newest base backup consistent before restore point "${target.name}"`,
      };
    }
  }
}

/** postgresql.conf settings that make PostgreSQL stop at the target. */
export function recoveryTargetSettings(target: PitrTarget, pause: boolean): Record<string, string> {
  const action = { recovery_target_action: pause ? "pause" : "promote" };
  switch (target.kind) {
    case "time":
      // PostgreSQL's parser rejects the "Z" zone designator; "+00" is the same instant.
      return {
        recovery_target_time: target.time.replace("T", " ").replace(/Z$/, "+00"),
        recovery_target_inclusive: "on",
        ...action,
      };
    case "lsn":
      return { recovery_target_lsn: target.lsn, recovery_target_inclusive: "on", ...action };
    case "name":
      return { recovery_target_name: target.name, ...action };
    case "latest":
      // No target: recovery replays everything archived, then promotes.
      return {};
  }
}
