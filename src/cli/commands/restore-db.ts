import type { Command } from "commander";
import { createInterface } from "node:readline/promises";
import { LifeboatError } from "../../errors.js";
import { resolveBackup } from "../../engine/catalog.js";
import { archiveBytes } from "../../engine/db-archive.js";
import { DB_KIND, databaseConfig } from "../../engine/database.js";
import { openRepositoriesTolerant } from "../../engine/repositories.js";
import {
  describeValidation,
  restoreDatabase,
  type RestoreReport,
} from "../../engine/restore-flow.js";
import { connectionFromConfig, type PgConnection } from "../../postgres/connection.js";
import { action, type Context } from "../context.js";
import { formatDuration } from "../output.js";
import { progressLine } from "../progress.js";
import { collect } from "./repo.js";

interface RestoreDbOptions {
  database?: string;
  into?: string;
  inPlace?: boolean;
  targetUrl?: string;
  withGlobals?: boolean;
  jobs?: string;
  yes?: boolean;
  keepOld?: boolean;
  identity?: string;
  repo: string[];
}

export function registerRestoreDb(restore: Command): void {
  restore
    .command("db")
    .description(
      "restore a database backup: into a new database (default), in place, or onto another server",
    )
    .argument("<backup>", "backup id, or `latest`")
    .option(
      "-d, --database <name>",
      "configured database the backup belongs to (default: the only one)",
    )
    .option(
      "--into <name>",
      "create and restore into this new database (default: <database>_restored_<time>)",
    )
    .option(
      "--in-place",
      "replace the live database: stop hook, verified emergency backup, restore, validate, swap, start hook",
    )
    .option(
      "--target-url <url>",
      "another server, e.g. postgres://user@host:5432/db (password from LIFEBOAT_TARGET_PASSWORD or PGPASSWORD)",
    )
    .option("--with-globals", "also restore roles, memberships and grants")
    .option(
      "-j, --jobs <n>",
      "parallel pg_restore jobs; custom-format backups then go through a temporary plaintext file (default: 1, streamed)",
    )
    .option("-y, --yes", "do not ask for confirmation (required for --in-place without a terminal)")
    .option(
      "--keep-old",
      "with --in-place, keep the replaced database as <name>__lifeboat_old_<time>",
    )
    .option("-i, --identity <file>", "identity file (default: encryption.identityFile)")
    .option("-r, --repo <name>", "only look in this repository (repeatable)", collect, [])
    .action(action(runRestoreDb, { notify: "restore" }));
}

async function runRestoreDb(
  context: Context,
  reference: string,
  options: RestoreDbOptions,
): Promise<void> {
  if (options.into && options.inPlace)
    throw new LifeboatError("USAGE", "--into and --in-place cannot be combined");
  const { config } = await context.config();
  const { name, database } = databaseConfig(config, options.database);
  const { repositories } = await openRepositoriesTolerant(config, options.repo, (m) =>
    context.out.detail(m),
  );
  const { repository, manifest } = await resolveBackup(repositories, reference, {
    kind: DB_KIND,
    source: name,
  });
  if (manifest.kind !== DB_KIND)
    throw new LifeboatError(
      "USAGE",
      `backup ${manifest.id} is a ${manifest.kind} backup, not a database backup`,
    );
  const target = options.targetUrl
    ? parseTargetUrl(options.targetUrl, database.database)
    : connectionFromConfig(database);
  // Streaming into a single pg_restore needs no temporary copy and starts at once; measured on
  // 2 cores it matches `pg_restore -j2` from a local file (bench/db.mjs). Parallel restore of a
  // custom-format archive needs a seekable file, so it is opt-in; directory backups are files anyway.
  const directory = manifest.objects.some((o) => o.name.startsWith("dump/"));
  const jobs = options.jobs ? Number.parseInt(options.jobs, 10) : directory ? database.jobs : 1;
  if (!Number.isInteger(jobs) || jobs < 1)
    throw new LifeboatError("USAGE", `--jobs must be a positive integer`);
  const identities = await context.identities(options.identity);

  let mode: { kind: "into"; database: string } | { kind: "in-place"; keepOld: boolean };
  if (options.inPlace) {
    await confirm(context, target, Boolean(options.yes));
    mode = { kind: "in-place", keepOld: Boolean(options.keepOld) };
  } else {
    const stamp = new Date().toISOString().replace(/[-:T]/g, "").slice(0, 12);
    mode = {
      kind: "into",
      database:
        options.into ??
        (options.targetUrl ? target.database : `${target.database}_restored_${stamp}`),
    };
  }

  context.out.note(
    `restoring backup ${manifest.id} (taken ${manifest.startedAt}) from "${repository.name}" to ${target.host}:${target.port}/${mode.kind === "into" ? mode.database : target.database}`,
  );
  const report = await restoreDatabase({
    config,
    databaseName: name,
    repository,
    manifest,
    emergencyRepositories: repositories,
    identities,
    target,
    mode,
    withGlobals: Boolean(options.withGlobals),
    jobs,
    onProgress: progressLine("restore", archiveBytes(manifest)),
    onNote: (message) => context.out.note(message),
  });
  context.out.result(report, () => renderReport(report));
  if (!report.ok) {
    context.out.note(
      `error[VALIDATION_FAILED]: ${describeValidation(report.restore)} — do not switch traffic to ${report.target.database}`,
    );
    process.exitCode = 1;
  }
}

async function confirm(context: Context, target: PgConnection, yes: boolean): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY || context.out.json) {
    throw new LifeboatError("USAGE", "--in-place replaces a live database and needs confirmation", {
      hint: "pass --yes",
    });
  }
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await prompt.question(
    `This replaces database "${target.database}" on ${target.host}:${target.port}. Type its name to continue: `,
  );
  prompt.close();
  if (answer.trim() !== target.database)
    throw new LifeboatError("ABORTED", "confirmation did not match; nothing was changed");
}

export function parseTargetUrl(text: string, defaultDatabase: string): PgConnection {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new LifeboatError("USAGE", "--target-url is not a URL", {
      hint: "use postgres://user@host:5432/database",
    });
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new LifeboatError("USAGE", "--target-url must start with postgres://");
  }
  if (url.password) {
    throw new LifeboatError(
      "USAGE",
      "--target-url must not contain a password (it would be visible in the process list)",
      {
        hint: "put the password in LIFEBOAT_TARGET_PASSWORD or PGPASSWORD",
      },
    );
  }
  const password = process.env.LIFEBOAT_TARGET_PASSWORD ?? process.env.PGPASSWORD;
  const sslmode = url.searchParams.get("sslmode") as PgConnection["sslmode"] | null;
  return {
    host: decodeURIComponent(url.hostname) || "127.0.0.1",
    port: url.port ? Number(url.port) : 5432,
    user: decodeURIComponent(url.username) || "postgres",
    database: decodeURIComponent(url.pathname.replace(/^\//, "")) || defaultDatabase,
    ...(password ? { password } : {}),
    ...(sslmode ? { sslmode } : {}),
  };
}

function renderReport(report: RestoreReport): string[] {
  const v = report.restore.validation;
  return [
    `${report.ok ? "restored" : "RESTORED WITH PROBLEMS:"} backup ${report.backup.id} ("${report.backup.repository}", taken ${report.backup.takenAt}) into ${report.target.server}/${report.target.database} (${report.mode})`,
    `  data-loss window: ${formatDuration(report.dataLossWindowMs)} (changes after the backup are not in this copy)`,
    `  restore took ${formatDuration(report.restore.restoreMs)}; whole run ${formatDuration(report.durationMs)}; ownership ${report.restore.ownership}`,
    ...(report.emergencyBackupId
      ? [`  emergency backup of the replaced database: ${report.emergencyBackupId}`]
      : []),
    ...(report.previousDatabase ? [`  previous database kept as ${report.previousDatabase}`] : []),
    ...(report.restore.globals
      ? [
          `  globals: ${report.restore.globals.applied} statement line(s), ${report.restore.globals.warnings.length} warning(s)`,
        ]
      : []),
    `  validation: ${v.ok ? "passed" : "FAILED"} (${v.tables.length} table(s) compared, ${v.checks.length} SQL check(s))`,
    ...v.tables.map(
      (t) =>
        `    ${t.ok ? "ok  " : "FAIL"} ${t.table}: ${t.actual?.rows ?? "?"} rows${t.expected.latest ? `, latest ${t.actual?.latest}` : ""}${t.problem ? ` — ${t.problem}` : ""}`,
    ),
    ...v.checks.map(
      (c) => `    ${c.ok ? "ok  " : "FAIL"} ${c.name}${c.problem ? ` — ${c.problem}` : ""}`,
    ),
    ...report.hooks.map(
      (h) =>
        `  ${h.ok ? "ok  " : "FAIL"} ${h.name} (${formatDuration(h.durationMs)})${h.problem ? ` — ${h.problem}` : ""}`,
    ),
    ...(report.restore.validation.tables.length === 0
      ? [`  note: the backup recorded no key tables; configure databases.<name>.keyTables`]
      : []),
  ];
}
