import type { RetentionConfig } from "../config/schema.js";

/**
 * Which backups `prune` keeps. Pure: fed a listing and a policy, returns the decision with the
 * reasons for every backup kept, so `--dry-run` can explain itself and tests can pin behaviour.
 * Policies apply per (kind, source) group — a burst of file backups must never push the last
 * database backup out of a keep-last window.
 */
export interface RetentionCandidate {
  id: string;
  kind: string;
  source?: string;
  /** When the backup was taken. */
  time: Date;
  /** A verify or restore test passed for it (per run history). */
  verified?: boolean;
}

export interface RetentionDecision {
  id: string;
  kind: string;
  source?: string;
  time: string;
  keep: boolean;
  reasons: string[];
}

export interface RetentionPlan {
  keep: RetentionDecision[];
  remove: RetentionDecision[];
}

type Policy = Pick<
  RetentionConfig,
  "keepDays" | "keepLast" | "daily" | "weekly" | "monthly" | "yearly"
>;

export function planRetention(
  candidates: readonly RetentionCandidate[],
  policy: Policy,
  now: Date,
): RetentionPlan {
  const groups = new Map<string, RetentionCandidate[]>();
  for (const candidate of candidates) {
    const key = `${candidate.kind}\u0000${candidate.source ?? ""}`;
    groups.set(key, [...(groups.get(key) ?? []), candidate]);
  }
  const decisions: RetentionDecision[] = [];
  for (const group of groups.values()) decisions.push(...planGroup(group, policy, now));
  decisions.sort((a, b) => Date.parse(b.time) - Date.parse(a.time) || (a.id < b.id ? 1 : -1));
  return { keep: decisions.filter((d) => d.keep), remove: decisions.filter((d) => !d.keep) };
}

function planGroup(group: RetentionCandidate[], policy: Policy, now: Date): RetentionDecision[] {
  const newestFirst = [...group].sort(
    (a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : -1),
  );
  const reasons = new Map<string, string[]>(newestFirst.map((c) => [c.id, []]));
  const add = (id: string, reason: string) => reasons.get(id)!.push(reason);

  const first = newestFirst[0];
  if (first) add(first.id, "newest backup");
  const newestVerified = newestFirst.find((c) => c.verified);
  if (newestVerified) add(newestVerified.id, "newest verified backup");

  const cutoff = now.getTime() - policy.keepDays * 86_400_000;
  for (const candidate of newestFirst) {
    if (candidate.time.getTime() >= cutoff)
      add(candidate.id, `younger than ${policy.keepDays} days`);
  }
  newestFirst
    .slice(0, policy.keepLast ?? 0)
    .forEach((c, index) => add(c.id, `last ${policy.keepLast} (#${index + 1})`));

  const buckets: [keyof Policy, string, (d: Date) => string][] = [
    ["daily", "day", (d) => d.toISOString().slice(0, 10)],
    ["weekly", "week", isoWeek],
    ["monthly", "month", (d) => d.toISOString().slice(0, 7)],
    ["yearly", "year", (d) => d.toISOString().slice(0, 4)],
  ];
  for (const [field, unit, bucketOf] of buckets) {
    const limit = policy[field] ?? 0;
    const seen = new Set<string>();
    for (const candidate of newestFirst) {
      if (seen.size >= limit) break;
      const bucket = bucketOf(candidate.time);
      if (seen.has(bucket)) continue;
      seen.add(bucket);
      add(candidate.id, `${field} (newest of ${unit} ${bucket})`);
    }
  }

  return newestFirst.map((c) => {
    const why = reasons.get(c.id)!;
    return {
      id: c.id,
      kind: c.kind,
      ...(c.source ? { source: c.source } : {}),
      time: c.time.toISOString(),
      keep: why.length > 0,
      reasons: why,
    };
  });
}

/** ISO 8601 week, e.g. 2026-W48 (weeks start on Monday; week 1 holds the first Thursday). */
export function isoWeek(date: Date): string {
  const day = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()));
  const weekday = day.getUTCDay() || 7;
  day.setUTCDate(day.getUTCDate() + 4 - weekday);
  const yearStart = new Date(Date.UTC(day.getUTCFullYear(), 0, 1));
  const week = Math.ceil(((day.getTime() - yearStart.getTime()) / 86_400_000 + 1) / 7);
  return `${day.getUTCFullYear()}-W${String(week).padStart(2, "0")}`;
}
