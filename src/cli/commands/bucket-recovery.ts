import type { Command } from "commander";
import { toLifeboatError } from "../../errors.js";
import { encodingFromConfig } from "../../engine/files.js";
import { openRepositoriesTolerant } from "../../engine/repositories.js";
import { closeTargets, parseTime, resolveBucket, resolveSecondary } from "../../objects/client.js";
import type { ConnectionFlags } from "./bucket-options.js";
import { collect as collectAll } from "../../objects/list.js";
import { recoverBucket } from "../../objects/recover.js";
import { restoreBucket, type RestoreItem } from "../../objects/restore.js";
import {
  findSnapshot,
  latestSettings,
  readSnapshotLines,
  saveSettingsIfChanged,
} from "../../objects/snapshot.js";
import { syncBuckets, type SyncProgress, type SyncResult } from "../../objects/sync.js";
import { action, type Context } from "../context.js";
import { formatBytes, formatDuration } from "../output.js";
import { connectionOptions, exitForFailures, flagsOf, integer } from "./bucket-options.js";
import { collect } from "./repo.js";

const SHOWN = 20;

function progress(context: Context) {
  return (p: SyncProgress) =>
    context.out.note(
      `  ${p.done}/${p.total} object(s), ${formatBytes(p.bytes)} of ${formatBytes(p.totalBytes)}`,
    );
}

function renderSync(result: SyncResult): string[] {
  const { plan } = result;
  const lines = [
    `${result.dryRun ? "plan" : "sync"} ${result.source} -> ${result.destination} (${result.mode === "server" ? "server-side copy" : "streamed"})`,
    `  ${result.dryRun ? "to copy" : "copied"}: ${result.dryRun ? plan.copy.length : result.copied} object(s), ${formatBytes(result.dryRun ? plan.copyBytes : result.copiedBytes)}; unchanged (skipped): ${plan.skipped}`,
    `  ${plan.delete.length > 0 ? `${result.dryRun ? "to delete" : "deleted"}: ${result.dryRun ? plan.delete.length : result.deleted}` : `kept (only in the destination; deletions are not propagated): ${plan.kept}`}`,
  ];
  if (result.dryRun) {
    lines.push(
      ...plan.copy
        .slice(0, SHOWN)
        .map((c) => `    copy ${c.key} (${c.reason}, ${formatBytes(c.size)})`),
    );
    if (plan.copy.length > SHOWN)
      lines.push(`    … and ${plan.copy.length - SHOWN} more (--json lists all)`);
    lines.push(...plan.delete.slice(0, SHOWN).map((d) => `    delete ${d.key}`));
  } else {
    lines.push(
      `  took ${formatDuration(result.durationMs)}: ${result.objectsPerSecond} objects/s, ${result.mibPerSecond} MiB/s`,
    );
  }
  for (const f of result.failed.slice(0, SHOWN))
    lines.push(`  FAILED ${f.key}: ${f.code} ${f.message}`);
  if (result.verify) {
    const v = result.verify;
    lines.push(
      `  verify: ${v.ok}/${v.checked} identical${v.problems.length ? `, ${v.problems.length} PROBLEM(S)` : ""}`,
    );
    for (const p of v.problems.slice(0, SHOWN)) lines.push(`    ${p.key}: ${p.problem}`);
  }
  return lines;
}

function renderItems(verb: string, items: RestoreItem[]): string[] {
  const lines = items
    .slice(0, SHOWN)
    .map(
      (i) =>
        `    ${verb} ${i.key}${i.fromSecondary ? ` <- copy in ${i.fromSecondary.bucket}` : i.from ? ` <- version ${i.from.versionId} of ${i.from.lastModified}` : ""}`,
    );
  if (items.length > SHOWN) lines.push(`    … and ${items.length - SHOWN} more (--json lists all)`);
  return lines;
}

export function registerBucketRecoveryCommands(bucket: Command): void {
  connectionOptions(
    bucket
      .command("sync")
      .description(
        "copy new and changed objects to a secondary bucket (deletions are not propagated unless asked)",
      )
      .argument("<source>", "configured bucket name, or a bucket name")
      .argument("[destination]", "bucket to copy to (default: the source's configured secondary)")
      .option("--prefix <prefix>", "only keys under this prefix")
      .option(
        "--concurrency <n>",
        "objects copied in parallel (default: syncConcurrency, 16)",
        integer,
      )
      .option("--propagate-deletes", "delete destination objects that are gone from the source")
      .option("--stream", "stream through this host even when a server-side copy is possible")
      .option("--verify", "afterwards, re-read destination objects and compare their content")
      .option("-n, --dry-run", "show the plan, copy nothing")
      .option("--no-save-settings", "do not save the source bucket's settings in the repositories")
      .option("-r, --repo <name>", "repositories for the settings copy (repeatable)", collect, []),
  ).action(
    action(
      async (
        context,
        sourceRef: string,
        destinationRef: string | undefined,
        options: ConnectionFlags & {
          prefix?: string;
          concurrency?: number;
          propagateDeletes?: boolean;
          stream?: boolean;
          verify?: boolean;
          dryRun?: boolean;
          saveSettings: boolean;
          repo: string[];
        },
      ) => {
        const { config } = await context.config();
        const source = resolveBucket(config, sourceRef, flagsOf(options));
        const destination = resolveSecondary(config, source, destinationRef, flagsOf(options));
        try {
          const result: SyncResult & { settings?: unknown } = await syncBuckets(
            source,
            destination,
            {
              ...(options.prefix ? { prefix: options.prefix } : {}),
              concurrency: options.concurrency ?? source.config?.syncConcurrency ?? 16,
              propagateDeletes: Boolean(options.propagateDeletes),
              mode: options.stream ? "stream" : "auto",
              dryRun: Boolean(options.dryRun),
              verify: Boolean(options.verify),
              retryAttempts: config.storage.retryAttempts,
              onProgress: progress(context),
              onRetry: (key, attempt, error) =>
                context.out.detail(
                  `${key}: attempt ${attempt} failed (${error.message}); retrying`,
                ),
            },
          );
          if (!options.dryRun && options.saveSettings) {
            try {
              const { repositories } = await openRepositoriesTolerant(config, options.repo);
              result.settings = await saveSettingsIfChanged(
                repositories,
                encodingFromConfig(config),
                source,
              );
            } catch (error) {
              const failure = toLifeboatError(error);
              result.settings = { error: { code: failure.code, message: failure.message } };
              context.out.warn(`bucket settings were not saved: ${failure.message}`);
            }
          }
          context.out.result(result, () => renderSync(result));
          exitForFailures([
            ...result.failed.map((f) => f.code),
            ...(result.verify?.problems.length ? ["OBJECT_CORRUPT"] : []),
          ]);
        } finally {
          closeTargets(source, destination);
        }
      },
    ),
  );

  connectionOptions(
    bucket
      .command("restore")
      .description(
        "roll a prefix or the whole bucket back to its state at a time (versions are kept)",
      )
      .argument("<bucket>", "configured bucket name, or a bucket name")
      .requiredOption(
        "--at <time>",
        "ISO 8601 time (UTC unless an offset is given), or a duration ago such as 2h",
      )
      .option("--prefix <prefix>", "only keys under this prefix, e.g. onboarding/1234/")
      .option(
        "--snapshot <id>",
        "start from this bucket snapshot (default: only when versions do not reach back)",
      )
      .option("--concurrency <n>", "objects restored in parallel", integer, 8)
      .option("-n, --dry-run", "show what would be restored, re-deleted and left alone")
      .option(
        "-i, --identity <file>",
        "identity file for reading snapshots (default: encryption.identityFile)",
      )
      .option("-r, --repo <name>", "repositories holding snapshots (repeatable)", collect, []),
  ).action(
    action(
      async (
        context,
        reference: string,
        options: ConnectionFlags & {
          at: string;
          prefix?: string;
          snapshot?: string;
          concurrency: number;
          dryRun?: boolean;
          identity?: string;
          repo: string[];
        },
      ) => {
        const { config } = await context.config();
        const at = parseTime(options.at);
        const target = resolveBucket(config, reference, flagsOf(options));
        // Content whose versions expired may still be in the configured secondary.
        const secondary = target.config?.secondary ? resolveSecondary(config, target) : undefined;
        try {
          const result = await restoreBucket(target, {
            ...(secondary ? { secondary } : {}),
            at,
            ...(options.prefix ? { prefix: options.prefix } : {}),
            dryRun: Boolean(options.dryRun),
            concurrency: options.concurrency,
            retryAttempts: config.storage.retryAttempts,
            forceBaseline: Boolean(options.snapshot),
            baseline: async (when) => {
              const repositories = await context.repositories(options.repo);
              const selector = options.snapshot ? { id: options.snapshot } : { at: when };
              const resolved = await findSnapshot(repositories, target.bucket, selector);
              if (!resolved) return undefined;
              const identities = await context.identities(options.identity);
              const takenAt = String(
                resolved.manifest.details.takenAt ?? resolved.manifest.startedAt,
              );
              return {
                id: resolved.manifest.id,
                takenAt: new Date(takenAt),
                lines: await collectAll(readSnapshotLines(resolved, identities)),
              };
            },
          });
          const verb = result.dryRun ? "would" : "did";
          context.out.result(result, () => [
            `${result.dryRun ? "plan: " : ""}${target.bucket}${result.prefix ? ` prefix ${result.prefix}` : ""} as of ${result.at}${result.snapshot ? ` (from snapshot ${result.snapshot.id}, taken ${result.snapshot.takenAt})` : ""}`,
            `  restore (copy the old version on top): ${result.restore.length} object(s), ${formatBytes(result.restoreBytes)}`,
            ...renderItems(result.dryRun ? "restore" : "restored", result.restore),
            `  re-delete (add a delete marker; did not exist then): ${result.delete.length}`,
            ...renderItems(result.dryRun ? "delete" : "deleted", result.delete),
            `  left alone: ${result.unchanged} unchanged, ${result.absent} absent then and now`,
            ...(result.missing.length > 0
              ? [
                  `  MISSING (no copy of the content left): ${result.missing.length}`,
                  ...renderItems("missing", result.missing),
                ]
              : []),
            ...(result.dryRun
              ? []
              : [
                  `  ${verb} ${result.restored + result.deleted} change(s) in ${formatDuration(result.durationMs)}; history kept`,
                ]),
            ...result.failed
              .slice(0, SHOWN)
              .map((f) => `  FAILED ${f.key}: ${f.code} ${f.message}`),
          ]);
          exitForFailures([
            ...result.failed.map((f) => f.code),
            ...(result.missing.length > 0 ? ["OBJECT_MISSING"] : []),
          ]);
        } finally {
          closeTargets(target, secondary);
        }
      },
    ),
  );

  connectionOptions(
    bucket
      .command("recover")
      .description(
        "recreate a lost bucket: copy everything back from the secondary and re-apply its saved settings",
      )
      .argument("<bucket>", "configured bucket name, or a bucket name")
      .option("--from <bucket>", "bucket to copy from (default: the configured secondary)")
      .option(
        "--concurrency <n>",
        "objects copied in parallel (default: syncConcurrency, 16)",
        integer,
      )
      .option("--stream", "stream through this host even when a server-side copy is possible")
      .option("--verify", "afterwards, re-read every object and compare its content")
      .option("--no-settings", "do not look for saved settings; apply `bucket protect` defaults")
      .option("-n, --dry-run", "show what would be done")
      .option(
        "-i, --identity <file>",
        "identity file for reading saved settings (default: encryption.identityFile)",
      )
      .option("-r, --repo <name>", "repositories holding saved settings (repeatable)", collect, []),
  ).action(
    action(
      async (
        context,
        reference: string,
        options: ConnectionFlags & {
          from?: string;
          concurrency?: number;
          stream?: boolean;
          verify?: boolean;
          settings: boolean;
          dryRun?: boolean;
          identity?: string;
          repo: string[];
        },
      ) => {
        const { config } = await context.config();
        const target = resolveBucket(config, reference, flagsOf(options));
        const from = resolveSecondary(config, target, options.from, flagsOf(options));
        try {
          const saved = options.settings
            ? await latestSettings(
                await context.repositories(options.repo),
                target.bucket,
                await context.identities(options.identity),
              )
            : undefined;
          if (options.settings && !saved)
            context.out.warn(
              `no saved settings of ${target.bucket}: applying \`bucket protect\` defaults`,
            );
          const result = await recoverBucket(target, from, {
            ...(saved ? { saved } : {}),
            dryRun: Boolean(options.dryRun),
            concurrency: options.concurrency ?? target.config?.syncConcurrency ?? 16,
            mode: options.stream ? "stream" : "auto",
            verify: Boolean(options.verify),
            retryAttempts: config.storage.retryAttempts,
            onProgress: progress(context),
          });
          context.out.result(result, () => [
            `${result.dryRun ? "plan: " : ""}recover ${result.location} from ${result.from}`,
            `  bucket: ${result.created ? (result.dryRun ? "would be created" : "created") : "existed (empty)"}`,
            `  settings: ${result.settings.source === "backup" ? `from ${result.settings.backupId}` : "bucket protect defaults"}${result.dryRun ? "" : `; applied ${result.settings.applied.join(", ") || "nothing"}`}`,
            ...(result.settings.source === "backup"
              ? result.settings.skipped.map((s) => `    skipped ${s.setting}: ${s.reason}`)
              : []),
            ...(result.objects
              ? [`  objects to copy: ${result.objects.count}, ${formatBytes(result.objects.bytes)}`]
              : []),
            ...(result.sync ? renderSync(result.sync).map((l) => `  ${l}`) : []),
          ]);
          exitForFailures([
            ...(result.sync?.failed.map((f) => f.code) ?? []),
            ...(result.sync?.verify?.problems.length ? ["OBJECT_CORRUPT"] : []),
          ]);
        } finally {
          closeTargets(target, from);
        }
      },
    ),
  );
}
