import type { Command } from "commander";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { durationSeconds } from "../../config/schema.js";
import { LifeboatError, formatErrorLine, toLifeboatError } from "../../errors.js";
import { encodingFromConfig } from "../../engine/files.js";
import { openRepositories, openRepositoriesTolerant } from "../../engine/repositories.js";
import { backupBase } from "../../postgres/basebackup.js";
import { cliEntry, walContext } from "../../wal/config.js";
import {
  NOT_ARCHIVED_EXIT,
  RECOVERY_ABORT_EXIT,
  fetchWalFile,
  prefetchAfter,
  segmentSizeOf,
  takeFromCache,
} from "../../wal/fetch.js";
import { parseWalName } from "../../wal/layout.js";
import { archiveFailure, archiveWalFile } from "../../wal/push.js";
import { pruneWal, walRetentionPlanFor } from "../../wal/retention.js";
import {
  UPLOADER_ARGS,
  acquirePidFile,
  enqueue,
  ensureUploader,
  releasePidFile,
  runningPid,
  spawnDetached,
} from "../../wal/spool.js";
import { runWalStream } from "../../wal/stream.js";
import { runUploader } from "../../wal/uploader.js";
import { action, type Context } from "../context.js";
import { formatBytes } from "../output.js";
import { collect } from "./repo.js";
import { reportBackup } from "./files.js";
import { registerPitrCommands } from "./pitr.js";
import { registerWalAdminCommands } from "./wal-admin.js";

/** `backup base`, `restore pitr`, the `wal` group, `setup wal`, `restore-point`, `status`. */
export function registerWalCommands(backup: Command, restore: Command, program: Command): void {
  backup
    .command("base")
    .description("physical base backup of the whole cluster, streamed into every repository")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option(
      "--wal <method>",
      "fetch (the backup carries its WAL) or none (WAL from the archive)",
      "fetch",
    )
    .option("--no-verify", "skip the per-file check against PostgreSQL's backup_manifest")
    .option("-l, --label <key=value>", "label to record in the manifest (repeatable)", collect, [])
    .action(
      action(
        async (
          context,
          options: { repo: string[]; wal: string; verify: boolean; label: string[] },
        ) => {
          if (options.wal !== "fetch" && options.wal !== "none")
            throw new LifeboatError("USAGE", "--wal is fetch or none");
          const { config } = await context.config();
          const log = (m: string) => context.out.detail(m);
          const { repositories, failures } = await openRepositoriesTolerant(
            config,
            options.repo,
            log,
          );
          const committed = await backupBase({
            context: walContext(config),
            config,
            repositories,
            walMethod: options.wal,
            verify: options.verify,
            labels: Object.fromEntries(
              options.label.map((l) => [l.split("=")[0], l.slice(l.indexOf("=") + 1)]),
            ),
            log,
          });
          reportBackup(context, committed, failures);
        },
      ),
    );
  registerPitrCommands(restore);

  const wal = program
    .command("wal")
    .description("continuous WAL archiving (archive_command, restore_command, streaming)");

  wal
    .command("push")
    .description(
      "archive one WAL file (archive_command): queue it in the spool, or upload it now with --direct",
    )
    .argument("<path>", "the file (%p)")
    .option("--direct", "upload to every repository before returning (no spool)")
    .action(
      action(async (context, file: string, options: { direct?: boolean }) => {
        const { config, file: configFile } = await context.config();
        const wal = walContext(config);
        if (options.direct) {
          const repositories = await openRepositories(config, []);
          const result = await archiveWalFile(repositories, file, {
            encoding: encodingFromConfig(config),
            tmpDir: tmpdir(),
            source: "archive_command",
          });
          const failure = archiveFailure(result);
          if (failure) throw failure;
          context.out.result(
            result,
            () =>
              `${result.name}: ${result.repositories.map((r) => `${r.repository} ${r.outcome}`).join(", ")}`,
          );
          return;
        }
        try {
          const queued = await enqueue(wal.spoolDir, file, {
            maxSegments: wal.wal.spoolMaxSegments,
          });
          context.out.result(queued, () => `${queued.name}: ${queued.outcome}`);
        } finally {
          await ensureUploader(wal.spoolDir, [
            cliEntry(),
            "--config",
            configFile,
            ...UPLOADER_ARGS,
          ]);
        }
      }),
    );

  wal
    .command("upload")
    .description(
      "upload the spooled WAL to every repository (started by `wal push`; or run it as a service with --daemon)",
    )
    .option("--daemon", "keep running and upload files as they arrive")
    .option(
      "--exit-when-idle <duration>",
      "with --daemon: exit after the spool stayed empty this long",
    )
    .action(
      action(async (context, options: { daemon?: boolean; exitWhenIdle?: string }) => {
        const { config } = await context.config();
        const wal = walContext(config);
        const controller = new AbortController();
        for (const signal of ["SIGINT", "SIGTERM"] as const)
          process.once(signal, () => controller.abort());
        const result = await runUploader({
          spoolDir: wal.spoolDir,
          encoding: encodingFromConfig(config),
          concurrency: wal.wal.uploadConcurrency,
          openRepositories: () => openRepositories(config, []),
          daemon: Boolean(options.daemon),
          ...(options.exitWhenIdle
            ? { exitWhenIdleMs: durationSeconds(options.exitWhenIdle) * 1000 }
            : {}),
          signal: controller.signal,
          log: (m) => context.out.note(`${new Date().toISOString()} ${m}`),
        });
        context.out.result(
          result,
          () => `${result.status}: ${result.uploaded} uploaded, ${result.failures} failure(s)`,
        );
        if (result.status === "failed" && result.lastError) throw result.lastError;
      }),
    );

  wal
    .command("fetch")
    .description(
      "restore one WAL file (restore_command); exits 1 when it is not archived, 255 on any other failure so recovery stops",
    )
    .argument("<name>", "the file name (%f)")
    .argument("<dest>", "where to write it (%p)")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("-i, --identity <file>", "identity file (default: encryption.identityFile)")
    .option(
      "--partial",
      "serve <name>.partial when <name> is not archived (end of a streamed archive)",
    )
    .action(
      action(
        async (
          context,
          name: string,
          dest: string,
          options: { repo: string[]; identity?: string; partial?: boolean },
        ) => {
          try {
            const found = await fetchOne(context, name, dest, options);
            if (!found) {
              context.out.note(`${name}: not archived`);
              process.exitCode = NOT_ARCHIVED_EXIT;
            }
          } catch (error) {
            // Exit codes above 125 make PostgreSQL abort recovery rather than treat it as the end of WAL.
            context.out.note(`lifeboat wal fetch: ${formatErrorLine(toLifeboatError(error))}`);
            process.exitCode = RECOVERY_ABORT_EXIT;
          }
        },
      ),
    );

  wal
    .command("prefetch", { hidden: true })
    .argument("<after>", "the segment just restored")
    .requiredOption("--dir <dir>", "prefetch cache")
    .option("--segment-size <bytes>", "WAL segment size", String(16 << 20))
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("-i, --identity <file>", "identity file")
    .action(
      action(
        async (
          context,
          after: string,
          options: { dir: string; segmentSize: string; repo: string[]; identity?: string },
        ) => {
          await mkdir(options.dir, { recursive: true });
          const pidFile = path.join(options.dir, "prefetch.pid");
          if (!(await acquirePidFile(pidFile))) return;
          try {
            const { config } = await context.config();
            await prefetchAfter(await context.repositories(options.repo), after, options.dir, {
              identities: await context.identities(options.identity),
              count: config.wal?.prefetch ?? 8,
              concurrency: 4,
              segmentSize: Number(options.segmentSize),
            });
          } finally {
            await releasePidFile(pidFile);
          }
        },
      ),
    );

  wal
    .command("stream")
    .description(
      "receive WAL over a replication slot (pg_receivewal) and upload it continuously; runs until stopped",
    )
    .action(
      action(async (context) => {
        const { config } = await context.config();
        const controller = new AbortController();
        for (const signal of ["SIGINT", "SIGTERM"] as const)
          process.once(signal, () => controller.abort());
        const state = await runWalStream({
          context: walContext(config),
          encoding: encodingFromConfig(config),
          openRepositories: () => openRepositories(config, []),
          signal: controller.signal,
          log: (m) => context.out.note(`${new Date().toISOString()} ${m}`),
        });
        context.out.result(state, () => `stopped; ${state.segments} segment(s) uploaded`);
      }),
    );

  wal
    .command("prune")
    .description(
      "delete WAL no retained base backup needs and older than wal.keep (plan with --dry-run)",
    )
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("--dry-run", "show the plan, delete nothing")
    .action(
      action(async (context, options: { repo: string[]; dryRun?: boolean }) => {
        const { config } = await context.config();
        const wal = walContext(config);
        const plans: Awaited<ReturnType<typeof walRetentionPlanFor>>[] = [];
        for (const repository of await context.repositories(options.repo)) {
          plans.push(
            options.dryRun
              ? await walRetentionPlanFor(repository, wal)
              : await pruneWal(repository, wal),
          );
        }
        context.out.result(plans, () =>
          plans.flatMap((p) => [
            `${p.repository}: ${options.dryRun ? "would delete" : "deleted"} ${p.deletions.length} WAL file(s) (${formatBytes(p.bytes)}), kept ${p.keptFiles}${p.anchor ? `; everything from base backup ${p.anchor} on is kept` : ""}`,
            ...p.notes.map((n) => `  note: ${n}`),
            ...p.deletions.slice(0, 20).map((d) => `  ${d.name}: ${d.reason}`),
            ...(p.deletions.length > 20 ? [`  … and ${p.deletions.length - 20} more`] : []),
          ]),
        );
      }),
    );

  registerWalAdminCommands(program, wal);
}

/** Direct restore_command: prefetched copy first, else the repositories; starts a prefetcher. */
async function fetchOne(
  context: Context,
  name: string,
  dest: string,
  options: { repo: string[]; identity?: string; partial?: boolean },
): Promise<boolean> {
  const { config, file: configFile } = await context.config();
  const cacheDir = path.join(path.dirname(path.resolve(dest)), ".lifeboat-prefetch");
  const isSegment = parseWalName(name)?.kind === "segment";
  const prefetch = config.wal?.prefetch ?? 0;
  let found = isSegment && prefetch > 0 && (await takeFromCache(cacheDir, name, dest));
  if (!found) {
    const outcome = await fetchWalFile(await context.repositories(options.repo), name, dest, {
      identities: await context.identities(options.identity),
      allowPartial: Boolean(options.partial),
      log: (m) => context.out.detail(m),
    });
    found = outcome.status === "found";
  }
  if (
    found &&
    isSegment &&
    prefetch > 0 &&
    !(await runningPid(path.join(cacheDir, "prefetch.pid")))
  ) {
    const repoArgs = options.repo.flatMap((r) => ["--repo", r]);
    const identityArgs = options.identity ? ["--identity", options.identity] : [];
    const segmentSize = String(await segmentSizeOf(dest));
    spawnDetached(
      [
        cliEntry(),
        "--config",
        configFile,
        "wal",
        "prefetch",
        name,
        "--dir",
        cacheDir,
        "--segment-size",
        segmentSize,
        ...repoArgs,
        ...identityArgs,
      ],
      "/dev/null",
    );
  }
  return found;
}
