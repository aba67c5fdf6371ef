import type { Command } from "commander";
import { LifeboatError } from "../../errors.js";
import { encodingFromConfig } from "../../engine/files.js";
import { openRepositoriesTolerant } from "../../engine/repositories.js";
import { bucketStatus, protectBucket, type BucketStatus } from "../../objects/protect.js";
import {
  applyBucketSettings,
  describeSettings,
  readBucketSettings,
  SETTING_NAMES,
  type SettingName,
} from "../../objects/settings.js";
import { latestSettings, snapshotBucket } from "../../objects/snapshot.js";
import { action } from "../context.js";
import { formatBytes, formatDuration } from "../output.js";
import { registerBucketRecoveryCommands } from "./bucket-recovery.js";
import { registerObjectCommands } from "./object.js";
import { collect } from "./repo.js";
import {
  connectionOptions,
  exitForFailures,
  integer,
  withBucket,
  type ConnectionFlags,
} from "./bucket-options.js";

export function registerBucketCommands(program: Command): void {
  const bucket = program
    .command("bucket")
    .description("protect application buckets: versioning, offsite copy, snapshots, restores");

  connectionOptions(
    bucket
      .command("protect")
      .description(
        "enable versioning and expire noncurrent versions after N days (other lifecycle rules are kept)",
      )
      .argument("<bucket>", "configured bucket name, or a bucket name")
      .option(
        "--days <n>",
        "days to keep noncurrent versions (default: noncurrentVersionDays, 90)",
        integer,
      )
      .option("-n, --dry-run", "show the change, change nothing"),
  ).action(
    action(
      async (
        context,
        reference: string,
        options: ConnectionFlags & { days?: number; dryRun?: boolean },
      ) => {
        const result = await withBucket(context, reference, options, (target) =>
          protectBucket(target, {
            ...(options.days ? { days: options.days } : {}),
            dryRun: Boolean(options.dryRun),
          }),
        );
        const verb = options.dryRun ? "would" : "will";
        context.out.result({ ...result, dryRun: Boolean(options.dryRun) }, () => [
          `${result.bucket}: ${result.changes === 0 ? "already protected" : result.applied ? "protected" : `${result.changes} change(s) ${verb} be made`}`,
          `  versioning: ${result.versioning.from}${result.versioning.from === "Enabled" ? "" : " -> Enabled"}`,
          `  lifecycle rule ${result.lifecycle.rule.ID}: ${result.lifecycle.action} (noncurrent versions expire after ${result.lifecycle.rule.NoncurrentVersionExpiration?.NoncurrentDays} days); ${result.lifecycle.rules.length} rule(s) in total`,
        ]);
      },
    ),
  );

  connectionOptions(
    bucket
      .command("status")
      .description("versioning, lifecycle, object lock, object and version counts, bytes")
      .argument(
        "[bucket]",
        "configured bucket name, or a bucket name (default: every configured bucket)",
      ),
  ).action(
    action(async (context, reference: string | undefined, options: ConnectionFlags) => {
      const { config } = await context.config();
      const references = reference ? [reference] : Object.keys(config.buckets);
      if (references.length === 0) {
        throw new LifeboatError("USAGE", "no bucket given and none configured", {
          hint: "name a bucket, or add one under `buckets:`",
        });
      }
      const statuses: BucketStatus[] = [];
      for (const ref of references)
        statuses.push(await withBucket(context, ref, options, bucketStatus));
      context.out.result(reference ? statuses[0] : statuses, () =>
        statuses.flatMap((s) => [
          `${s.bucket}  ${s.location}  ${s.protected ? context.out.color.green("protected") : context.out.color.red("NOT protected")}`,
          `  versioning: ${s.versioning}; lifecycle: ${s.lifecycle.rules} rule(s)${s.lifecycle.noncurrentDays === undefined ? "" : `, noncurrent versions kept ${s.lifecycle.noncurrentDays} days`}`,
          `  object lock: ${s.objectLock.enabled ? `enabled${s.objectLock.mode ? ` (${s.objectLock.mode} ${s.objectLock.days ?? s.objectLock.years ?? ""}${s.objectLock.days ? "d" : s.objectLock.years ? "y" : ""})` : ""}` : "off"}`,
          `  ${s.objects} object(s), ${formatBytes(s.currentBytes)}; ${s.noncurrentVersions} noncurrent version(s), ${s.deleteMarkers} delete marker(s); ${formatBytes(s.totalBytes)} in all versions`,
          ...(s.oldestVersion ? [`  history from ${s.oldestVersion}`] : []),
          ...s.warnings.map((w) => `  ${context.out.color.yellow("warning:")} ${w}`),
        ]),
      );
    }),
  );

  connectionOptions(
    bucket
      .command("snapshot")
      .description(
        "record every key's current version, size and ETag plus the bucket settings in the repositories",
      )
      .argument("<bucket>", "configured bucket name, or a bucket name")
      .option("-r, --repo <name>", "only this repository (repeatable)", collect, []),
  ).action(
    action(async (context, reference: string, options: ConnectionFlags & { repo: string[] }) => {
      const { config } = await context.config();
      const { repositories, failures } = await openRepositoriesTolerant(config, options.repo, (m) =>
        context.out.detail(m),
      );
      const { committed, details } = await withBucket(context, reference, options, (target) =>
        snapshotBucket(repositories, encodingFromConfig(config), target, { bucket: target.name }),
      );
      const failed = [...failures, ...committed.failures];
      context.out.result(
        {
          ok: failed.length === 0,
          id: committed.id,
          repositories: committed.manifests.map((m) => m.repository.name),
          failed: failed.map((f) => ({
            repository: f.repository,
            code: f.error.code,
            message: f.error.message,
          })),
          details,
        },
        () => [
          `snapshot ${committed.id} of ${details.bucket} written to ${committed.manifests.map((m) => `"${m.repository.name}"`).join(", ")}`,
          `  ${details.keys} key(s), ${formatBytes(details.bytes)}, ${details.deleteMarkers} deleted key(s); taken at ${details.takenAt} (listing took ${formatDuration(Date.parse(details.listedUntil) - Date.parse(details.takenAt))})`,
        ],
      );
      for (const f of failed)
        context.out.note(
          `repository "${f.repository}": ${f.error.message} (this snapshot is NOT in it)`,
        );
      exitForFailures(failed.map((f) => f.error.code));
    }),
  );

  const settings = bucket.command("settings").description("show or re-apply saved bucket settings");
  connectionOptions(
    settings
      .command("show")
      .description("the bucket's settings now (or as saved in a backup)")
      .argument("<bucket>", "configured bucket name, or a bucket name")
      .option("--saved", "show the newest saved copy instead of the live settings")
      .option("-i, --identity <file>", "identity file (default: encryption.identityFile)"),
  ).action(
    action(
      async (
        context,
        reference: string,
        options: ConnectionFlags & { saved?: boolean; identity?: string },
      ) => {
        const shown = await withBucket(context, reference, options, async (target) => {
          if (!options.saved)
            return { backupId: undefined, settings: await readBucketSettings(target) };
          const saved = await latestSettings(
            await context.repositories(),
            target.bucket,
            await context.identities(options.identity),
          );
          if (!saved)
            throw new LifeboatError("BACKUP_NOT_FOUND", `no saved settings of ${target.bucket}`, {
              hint: "run `lifeboat bucket snapshot` or `bucket sync`",
            });
          return saved;
        });
        context.out.result(shown, () => [
          `${shown.settings.bucket}${shown.backupId ? ` (saved in ${shown.backupId}, captured ${shown.settings.capturedAt})` : ""}`,
          ...describeSettings(shown.settings).map((line) => `  ${line}`),
        ]);
      },
    ),
  );

  connectionOptions(
    settings
      .command("apply")
      .description(
        "re-apply saved settings (versioning, object lock, CORS, lifecycle, tags, policy) to the bucket",
      )
      .argument("<bucket>", "configured bucket name, or a bucket name")
      .option("--backup <id>", "a bucket-snapshot or bucket-settings backup (default: the newest)")
      .option(
        "--only <setting>",
        `only these settings (repeatable: ${SETTING_NAMES.join(", ")})`,
        collect,
        [],
      )
      .option("-n, --dry-run", "show the saved settings, change nothing")
      .option("-i, --identity <file>", "identity file (default: encryption.identityFile)"),
  ).action(
    action(
      async (
        context,
        reference: string,
        options: ConnectionFlags & {
          backup?: string;
          only: string[];
          dryRun?: boolean;
          identity?: string;
        },
      ) => {
        const unknown = options.only.filter(
          (o) => !(SETTING_NAMES as readonly string[]).includes(o),
        );
        if (unknown.length > 0)
          throw new LifeboatError("USAGE", `unknown setting ${unknown.join(", ")}`, {
            hint: `settings: ${SETTING_NAMES.join(", ")}`,
          });
        const result = await withBucket(context, reference, options, async (target) => {
          const repositories = await context.repositories();
          const identities = await context.identities(options.identity);
          const saved = await latestSettings(
            repositories,
            target.bucket,
            identities,
            options.backup,
          );
          if (!saved)
            throw new LifeboatError("BACKUP_NOT_FOUND", `no saved settings of ${target.bucket}`, {
              hint: "run `lifeboat bucket snapshot` or `bucket sync` first",
            });
          const only = (options.only.length > 0 ? options.only : SETTING_NAMES) as SettingName[];
          const applied = options.dryRun
            ? { applied: [], skipped: [] }
            : await applyBucketSettings(target, saved.settings, only);
          return {
            bucket: target.bucket,
            backupId: saved.backupId,
            dryRun: Boolean(options.dryRun),
            settings: saved.settings,
            ...applied,
          };
        });
        context.out.result(result, () => [
          `${result.bucket}: ${result.dryRun ? "would apply" : "applied"} settings saved in ${result.backupId}${result.dryRun ? "" : `: ${result.applied.join(", ") || "nothing"}`}`,
          ...describeSettings(result.settings).map((line) => `  ${line}`),
          ...result.skipped.map((s) => `  skipped ${s.setting}: ${s.reason}`),
        ]);
      },
    ),
  );

  registerBucketRecoveryCommands(bucket);
  registerObjectCommands(program);
}
