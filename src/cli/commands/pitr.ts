import type { Command } from "commander";
import { durationSeconds } from "../../config/schema.js";
import { EXIT } from "../../errors.js";
import { restorePitr, type PitrResult } from "../../postgres/pitr.js";
import { walContext } from "../../wal/config.js";
import { parseTarget } from "../../wal/target.js";
import { action } from "../context.js";
import { formatDuration } from "../output.js";
import { collect } from "./repo.js";

export function registerPitrCommands(restore: Command): void {
  restore
    .command("pitr")
    .description(
      "point-in-time restore of the cluster into a new data directory, replayed to a time, LSN, restore point or the latest WAL",
    )
    .requiredOption("--target-dir <dir>", "new (or empty) data directory")
    .option(
      "--time <iso>",
      "recover every transaction committed at or before this time (with a zone, e.g. 2026-11-26T14:03:00Z)",
    )
    .option("--lsn <lsn>", "recover up to this WAL position")
    .option("--name <restore point>", "recover up to a named restore point")
    .option("--latest", "recover everything archived")
    .option("--port <port>", "start the restored server on this port and leave it running")
    .option(
      "--pause",
      "pause at the target instead of promoting (inspect, then SELECT pg_wal_replay_resume())",
    )
    .option("--backup <id>", "start from this base backup instead of the best one")
    .option(
      "--archive",
      "keep archive_command in the restored cluster (it becomes the new primary)",
    )
    .option("--no-verify", "skip pg_verifybackup on the restored base backup")
    .option("--timeout <duration>", "give up if recovery takes longer", "1h")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("-i, --identity <file>", "identity file (default: encryption.identityFile)")
    .action(
      action(
        async (
          context,
          options: {
            targetDir: string;
            time?: string;
            lsn?: string;
            name?: string;
            latest?: boolean;
            port?: string;
            pause?: boolean;
            backup?: string;
            archive?: boolean;
            verify: boolean;
            timeout: string;
            repo: string[];
            identity?: string;
          },
        ) => {
          const target = parseTarget(options);
          const { config, file } = await context.config();
          const wal = walContext(config);
          const result = await restorePitr({
            context: wal,
            configFile: file,
            repositories: await context.repositories(options.repo),
            identities: await context.identities(options.identity),
            target,
            targetDir: options.targetDir,
            ...(options.port ? { port: Number(options.port) } : {}),
            pause: Boolean(options.pause),
            ...(options.backup ? { backupId: options.backup } : {}),
            keepArchiving: Boolean(options.archive),
            verify: options.verify,
            prefetch: wal.wal.prefetch,
            timeoutMs: durationSeconds(options.timeout) * 1000,
            log: (m) => context.out.note(m),
          });
          context.out.result(result, () => render(result));
          if (!result.validation.ok) process.exitCode = EXIT.failure;
        },
      ),
    );
}

function render(r: PitrResult): string[] {
  const target =
    r.target.kind === "time"
      ? `time ${r.target.time}`
      : r.target.kind === "lsn"
        ? `LSN ${r.target.lsn}`
        : r.target.kind === "name"
          ? `restore point "${r.target.name}"`
          : "the latest archived WAL";
  return [
    `restored ${r.server.dataDir} to ${target} from base backup ${r.backup.id} ("${r.backup.repository}")`,
    `  recovered to LSN ${r.recovered.lsn} on timeline ${r.recovered.timeline}; last transaction ${r.recovered.lastTransactionAt ?? "none replayed"}; ${r.recovered.state}`,
    ...(r.gapBeforeTargetSeconds !== undefined
      ? [`  last recovered commit is ${r.gapBeforeTargetSeconds.toFixed(3)} s before the target`]
      : []),
    ...(r.target.kind === "latest" && r.recovered.lastTransactionAt
      ? [
          `  data-loss window: commits after ${r.recovered.lastTransactionAt} are not in the archive${r.archiveReach.partial ? " (a streamed partial segment was used)" : ""}`,
        ]
      : []),
    `  WAL: ${r.fetch.served} file(s) restored (${r.fetch.fromCache} prefetched), ${r.fetch.missing} not archived`,
    `  took ${formatDuration(r.timings.totalMs)} (base backup ${formatDuration(r.timings.extractMs)}, recovery ${formatDuration(r.timings.recoveryMs)})`,
    ...r.validation.tables.map((t) =>
      t.exists
        ? `  ${t.table}: ${t.rows} rows${t.latest ? `, newest ${t.timestampColumn} ${t.latest}` : ""}`
        : `  ${t.table}: absent`,
    ),
    ...r.validation.problems.map((p) => `  VALIDATION: ${p}`),
    r.server.running
      ? `  server running on 127.0.0.1:${r.server.port} (log ${r.server.logFile})`
      : `  server stopped (start it with pg_ctl -D ${r.server.dataDir} start)`,
  ];
}
