import type { LifeboatConfig } from "../config/schema.js";
import type { Repository } from "../repository/repository.js";
import type { RepositoryFailure } from "../repository/writer.js";
import type { AgeIdentity } from "../stream/age/index.js";

export type CheckStatus = "pass" | "warn" | "fail";

/** One line of the checklist: what was checked, where, the verdict and what to do about it. */
export interface CheckResult {
  /** Stable id, e.g. `backups.daily`; alerts de-duplicate on id + subject + status. */
  id: string;
  title: string;
  status: CheckStatus;
  /** Repository, database or bucket the result is about. */
  subject?: string;
  message: string;
  /** The next step when not passing. */
  hint?: string;
  details?: Record<string, unknown>;
}

export interface CheckContext {
  config: LifeboatConfig;
  /** Repositories that opened. */
  repositories: Repository[];
  /** Repositories that could not be opened (reported by the config check). */
  unreachable: RepositoryFailure[];
  now: Date;
  /** Re-read and decrypt stored bytes instead of comparing sizes only. */
  deep: boolean;
  /** Loaded when deep checks need them and the identity file is configured. */
  identities: AgeIdentity[];
}

/** A check group. A check that throws is reported as a failure of that check, never of the run. */
export interface CheckDefinition {
  id: string;
  title: string;
  run(context: CheckContext): Promise<CheckResult[]>;
}

export const STATUS_RANK: Record<CheckStatus, number> = { pass: 0, warn: 1, fail: 2 };

export function worst(results: readonly CheckResult[]): CheckStatus {
  return results.reduce<CheckStatus>(
    (w, r) => (STATUS_RANK[r.status] > STATUS_RANK[w] ? r.status : w),
    "pass",
  );
}
