import type { Command } from "commander";
import { listBackups, resolveBackup, type BackupSummary } from "../../engine/catalog.js";
import { action } from "../context.js";
import { formatAge, formatBytes, formatDuration, renderTable } from "../output.js";
import { collect } from "./repo.js";

export function registerBackupsCommands(program: Command): void {
  const backups = program.command("backups").description("list and inspect backups");

  backups
    .command("list")
    .description("list backups in every repository, newest first")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("--kind <kind>", "only backups of this kind (db, files, ...)")
    .option("--source <name>", "only backups of this source (database name, ...)")
    .action(
      action(async (context, options: { repo: string[]; kind?: string; source?: string }) => {
        const rows = await listBackups(await context.repositories(options.repo), {
          ...(options.kind ? { kind: options.kind } : {}),
          ...(options.source ? { source: options.source } : {}),
        });
        const c = context.out.color;
        context.out.result(rows, () =>
          rows.length === 0
            ? "no backups"
            : renderTable<BackupSummary>(
                [
                  { header: "id", value: (r) => r.id },
                  { header: "kind", value: (r) => r.kind ?? "?" },
                  { header: "source", value: (r) => r.source ?? "" },
                  {
                    header: "status",
                    value: (r) => (r.status === "complete" ? c.green(r.status) : c.red(r.status)),
                  },
                  { header: "repo", value: (r) => r.repository },
                  {
                    header: "size",
                    value: (r) => (r.storedBytes === undefined ? "" : formatBytes(r.storedBytes)),
                    align: "right",
                  },
                  {
                    header: "age",
                    value: (r) => formatAge(new Date(r.finishedAt ?? r.startedAt)),
                    align: "right",
                  },
                  {
                    header: "took",
                    value: (r) => (r.durationMs === undefined ? "" : formatDuration(r.durationMs)),
                    align: "right",
                  },
                ],
                rows,
              ),
        );
      }),
    );

  backups
    .command("show")
    .description("show a backup's manifest: objects, sizes, checksums, timings and source details")
    .argument("<id>", "backup id, or `latest`")
    .option("-r, --repo <name>", "look only in this repository (repeatable)", collect, [])
    .action(
      action(async (context, id: string, options: { repo: string[] }) => {
        const { repository, manifest } = await resolveBackup(
          await context.repositories(options.repo),
          id,
        );
        context.out.result({ repository: repository.name, manifest }, () => [
          `backup ${manifest.id} (${manifest.kind}${manifest.source ? ` of ${manifest.source}` : ""}) in "${repository.name}" ${repository.location}`,
          `  started ${manifest.startedAt}, finished ${manifest.finishedAt} (${formatDuration(manifest.durationMs)}) on ${manifest.host}`,
          `  ${manifest.tool.name} ${manifest.tool.version}; ${manifest.totals.objects} object(s), ${formatBytes(manifest.totals.plainBytes)} -> ${formatBytes(manifest.totals.storedBytes)} stored`,
          ...Object.entries(manifest.labels).map(([k, v]) => `  label ${k}=${v}`),
          ...manifest.objects.map(
            (o) =>
              `  ${o.name}: ${formatBytes(o.plain.bytes)} -> ${formatBytes(o.size)} (${o.compression.algorithm}${o.encryption ? ", age" : ", unencrypted"}) sha256 ${o.plain.sha256.slice(0, 16)}…`,
          ),
          ...(Object.keys(manifest.details).length > 0
            ? [
                "  details:",
                ...JSON.stringify(manifest.details, null, 2)
                  .split("\n")
                  .map((l) => `    ${l}`),
              ]
            : []),
        ]);
      }),
    );
}
