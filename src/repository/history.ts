import { randomBytes } from "node:crypto";
import { z } from "zod";
import { isLifeboatError, type LifeboatError } from "../errors.js";
import { readSmall, writeSmall } from "../storage/text.js";
import { hostName } from "../version.js";
import { checksumMatches, sealDocument } from "./canonical.js";
import type { Repository } from "./repository.js";

/**
 * Run history: one small checksummed document per run (backup, restore, verify, prune, drill...)
 * under history/<yyyy-mm>/, so checks, metrics and reports can answer "when did this last work?"
 * from the repository alone. Append-only: records are never rewritten.
 */
export const HISTORY_PREFIX = "history/";

export const runRecordSchema = z.object({
  format: z.literal("lifeboat-run"),
  version: z.number().int(),
  id: z.string(),
  operation: z.string(),
  result: z.enum(["ok", "failed", "partial"]),
  startedAt: z.string(),
  finishedAt: z.string(),
  durationMs: z.number(),
  host: z.string(),
  backupId: z.string().optional(),
  source: z.string().optional(),
  bytes: z.number().optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  details: z.record(z.string(), z.unknown()).default({}),
  checksum: z.string(),
});
export type RunRecord = z.infer<typeof runRecordSchema>;

export interface RunInput {
  operation: string;
  result: RunRecord["result"];
  startedAt: Date;
  finishedAt?: Date;
  backupId?: string;
  source?: string;
  bytes?: number;
  error?: LifeboatError;
  details?: Record<string, unknown>;
}

export async function appendRun(repository: Repository, input: RunInput): Promise<RunRecord> {
  const finishedAt = input.finishedAt ?? new Date();
  const stamp = finishedAt.toISOString().replace(/[-:.]/g, "");
  const id = `${stamp}-${input.operation.replace(/[^a-z0-9]+/gi, "-")}-${randomBytes(3).toString("hex")}`;
  const document = {
    format: "lifeboat-run" as const,
    version: 1,
    id,
    operation: input.operation,
    result: input.result,
    startedAt: input.startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: finishedAt.getTime() - input.startedAt.getTime(),
    host: hostName(),
    ...(input.backupId ? { backupId: input.backupId } : {}),
    ...(input.source ? { source: input.source } : {}),
    ...(input.bytes !== undefined ? { bytes: input.bytes } : {}),
    ...(input.error ? { error: { code: input.error.code, message: input.error.message } } : {}),
    details: input.details ?? {},
  };
  const text = sealDocument(document);
  await writeSmall(
    repository.storage,
    `${HISTORY_PREFIX}${finishedAt.toISOString().slice(0, 7)}/${id}.json`,
    text,
  );
  return runRecordSchema.parse(JSON.parse(text));
}

/** Best effort: history must never turn a good backup or restore into a failure. */
export async function appendRunQuietly(repositories: Repository[], input: RunInput): Promise<void> {
  await Promise.all(
    repositories.map((repository) => appendRun(repository, input).catch(() => undefined)),
  );
}

/** Runs newest first, optionally since a time; damaged records are skipped. */
export async function readRuns(
  repository: Repository,
  options: { since?: Date; operation?: string } = {},
): Promise<RunRecord[]> {
  const records: RunRecord[] = [];
  const sinceMonth = options.since?.toISOString().slice(0, 7);
  for await (const info of repository.storage.list(HISTORY_PREFIX)) {
    const month = info.key.slice(HISTORY_PREFIX.length, HISTORY_PREFIX.length + 7);
    if (sinceMonth && month < sinceMonth) continue;
    try {
      const value = JSON.parse(await readSmall(repository.storage, info.key, 1 << 20)) as Record<
        string,
        unknown
      >;
      if (!checksumMatches(value)) continue;
      const parsed = runRecordSchema.safeParse(value);
      if (!parsed.success) continue;
      if (options.since && Date.parse(parsed.data.finishedAt) < options.since.getTime()) continue;
      if (options.operation && parsed.data.operation !== options.operation) continue;
      records.push(parsed.data);
    } catch (error) {
      if (!isLifeboatError(error, "STORAGE_NOT_FOUND")) throw error;
    }
  }
  return records.sort((a, b) => Date.parse(b.finishedAt) - Date.parse(a.finishedAt));
}
