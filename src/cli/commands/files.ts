import type { Command } from "commander";
import { pipeline } from "node:stream/promises";
import { EXIT, LifeboatError, formatErrorLine } from "../../errors.js";
import { resolveBackup } from "../../engine/catalog.js";
import { backupFiles, fileInputs, restoreFiles } from "../../engine/files.js";
import { openRepositoriesTolerant } from "../../engine/repositories.js";
import type { CommittedBackup, RepositoryFailure } from "../../repository/writer.js";
import { action, type Context } from "../context.js";
import { formatBytes, formatDuration } from "../output.js";
import { collect } from "./repo.js";

export function registerFilesCommands(backup: Command, restore: Command, program: Command): void {
  backup
    .command("files")
    .description("back up files (or stdin as `-`): configuration, secrets, exports")
    .argument("<paths...>", "regular files, or - for stdin")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("--source <name>", "what these files are (shown in listings)", "files")
    .option("--stdin-name <name>", "object name for stdin", "stdin")
    .option("-l, --label <key=value>", "label to record in the manifest (repeatable)", collect, [])
    .action(
      action(
        async (
          context,
          paths: string[],
          options: { repo: string[]; source: string; stdinName: string; label: string[] },
        ) => {
          const { config } = await context.config();
          const inputs = await fileInputs(paths, options.stdinName);
          const { repositories, failures } = await openRepositoriesTolerant(
            config,
            options.repo,
            (m) => context.out.detail(m),
          );
          const committed = await backupFiles(repositories, config, inputs, {
            source: options.source,
            labels: parseLabels(options.label),
          });
          reportBackup(context, committed, failures);
        },
        { notify: "backup" },
      ),
    );

  restore
    .command("files")
    .description(
      "restore the files of a backup into a directory (each file verified before it appears)",
    )
    .argument("<id>", "backup id, or `latest`")
    .requiredOption("--to <dir>", "directory to restore into")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("--only <name>", "only this object (repeatable)", collect, [])
    .option("--overwrite", "replace existing files")
    .option("-i, --identity <file>", "identity file (default: encryption.identityFile)")
    .action(
      action(
        async (
          context,
          id: string,
          options: {
            to: string;
            repo: string[];
            only: string[];
            overwrite?: boolean;
            identity?: string;
          },
        ) => {
          const { repository, manifest } = await resolveBackup(
            await context.repositories(options.repo),
            id,
            id === "latest" ? { kind: "files" } : {},
          );
          const identities = await context.identities(options.identity);
          const restored = await restoreFiles(repository, manifest, options.to, identities, {
            overwrite: Boolean(options.overwrite),
            only: options.only,
          });
          context.out.result({ backup: manifest.id, repository: repository.name, restored }, () => [
            `restored ${restored.length} file(s) from ${manifest.id} ("${repository.name}", taken ${manifest.finishedAt}) into ${options.to}`,
            ...restored.map((r) => `  ${r.path} (${formatBytes(r.bytes)})`),
          ]);
        },
      ),
    );

  program
    .command("cat")
    .description("write one object of a backup to stdout, decrypted, decompressed and verified")
    .argument("<id>", "backup id, or `latest`")
    .argument("<object>", "object name (see `backups show`)")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("-i, --identity <file>", "identity file (default: encryption.identityFile)")
    .action(
      action(
        async (
          context,
          id: string,
          name: string,
          options: { repo: string[]; identity?: string },
        ) => {
          const { repository, manifest } = await resolveBackup(
            await context.repositories(options.repo),
            id,
          );
          const record = manifest.objects.find((o) => o.name === name);
          if (!record) {
            throw new LifeboatError("USAGE", `backup ${manifest.id} has no object "${name}"`, {
              hint: `objects: ${manifest.objects.map((o) => o.name).join(", ")}`,
            });
          }
          const identities = await context.identities(options.identity);
          await pipeline(
            await repository.openObject(manifest, record, { identities }),
            process.stdout,
            { end: false },
          );
        },
      ),
    );
}

export function parseLabels(labels: string[]): Record<string, string> {
  return Object.fromEntries(
    labels.map((label) => {
      const at = label.indexOf("=");
      if (at <= 0) throw new LifeboatError("USAGE", `label "${label}" is not key=value`);
      return [label.slice(0, at), label.slice(at + 1)];
    }),
  );
}

/** Prints a committed backup; repositories that failed are errors on stderr and a failing exit code. */
/** What a committed backup reports: JSON, human lines, and the repositories it is missing from. */
export function describeBackup(committed: CommittedBackup, openFailures: RepositoryFailure[] = []) {
  const failures = [...openFailures, ...committed.failures];
  const first = committed.manifests[0]!.manifest;
  return {
    failures,
    json: {
      ok: failures.length === 0,
      id: committed.id,
      repositories: committed.manifests.map((m) => m.repository.name),
      failed: failures.map((f) => ({
        repository: f.repository,
        code: f.error.code,
        message: f.error.message,
      })),
      manifest: first,
    },
    lines: [
      `backup ${committed.id} (${first.kind}${first.source ? ` of ${first.source}` : ""}) written to ${committed.manifests.map((m) => `"${m.repository.name}"`).join(", ")}`,
      `  ${first.totals.objects} object(s), ${formatBytes(first.totals.plainBytes)} -> ${formatBytes(first.totals.storedBytes)} stored in ${formatDuration(first.durationMs)}`,
    ],
  };
}

/** Repositories a backup did not reach are errors on stderr and a failing exit code. */
export function reportRepositoryFailures(context: Context, failures: RepositoryFailure[]): void {
  for (const failure of failures) {
    context.out.note(
      `${formatErrorLine(failure.error)} (repository "${failure.repository}": this backup is NOT in it)`,
    );
  }
  if (failures.length > 0) {
    process.exitCode = Math.max(
      ...failures.map((f) => f.error.exitStatus),
      EXIT.failure,
      Number(process.exitCode ?? 0),
    );
  }
}

export function reportBackup(
  context: Context,
  committed: CommittedBackup,
  openFailures: RepositoryFailure[] = [],
): void {
  const { json, lines, failures } = describeBackup(committed, openFailures);
  context.out.result(json, () => lines);
  reportRepositoryFailures(context, failures);
}
