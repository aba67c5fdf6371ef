import type { Command } from "commander";
import { LifeboatError } from "../../errors.js";
import { runDemo, type DemoReport } from "../../demo/demo.js";
import { action } from "../context.js";
import { formatBytes, formatDuration } from "../output.js";

export function registerDemoCommand(program: Command): void {
  program
    .command("demo")
    .description(
      "run the whole job on embedded defaults: throwaway PostgreSQL, sample data, backup, verify, restore, validate",
    )
    .option("--scale <n>", "sample size multiplier (1 ≈ 3 MB of data)", "1")
    .option("--keep <dir>", "keep the repository and identity in this directory")
    .action(
      action(async (context, options: { scale: string; keep?: string }) => {
        const scale = Number(options.scale);
        if (!Number.isInteger(scale) || scale < 1 || scale > 1000)
          throw new LifeboatError("USAGE", "--scale must be an integer from 1 to 1000");
        const report = await runDemo({
          scale,
          ...(options.keep ? { keepDir: options.keep } : {}),
          onStep: (message) => context.out.note(`• ${message}`),
        });
        context.out.result(report, () => render(report));
        if (!report.ok) process.exitCode = 1;
      }),
    );
}

function render(r: DemoReport): string[] {
  const ratio = r.backup.plainBytes / Math.max(1, r.backup.storedBytes);
  return [
    `lifeboat demo: ${r.ok ? "PASSED" : "FAILED"} in ${formatDuration(r.totalMs)} (PostgreSQL ${r.postgres.version})`,
    `  database   ${r.database.name}: ${formatBytes(r.database.sizeBytes)} on disk, ${r.database.tables} tables, a role with grants, a sequence, a large object`,
    `  backup     ${r.backup.id}: dump ${formatBytes(r.backup.plainBytes)} → ${formatBytes(r.backup.storedBytes)} stored (zstd + age, ${ratio.toFixed(1)}x) in ${formatDuration(r.backup.ms)} (${r.backup.throughputMBps.toFixed(1)} MB/s)`,
    `  verify     ${r.verify.ok ? "ok" : "FAILED"} in ${formatDuration(r.verify.ms)}: ${r.verify.checks.join(", ")}`,
    `  restore    into ${r.restore.database} in ${formatDuration(r.restore.ms)}; validation ${r.restore.validation.ok ? "passed" : "FAILED"}:`,
    ...r.restore.validation.tables.map(
      (t) =>
        `               ${t.ok ? "ok  " : "FAIL"} ${t.table}: ${t.actual?.rows ?? "?"} rows, latest ${t.actual?.latest ?? "-"}${t.problem ? ` — ${t.problem}` : ""}`,
    ),
    ...r.restore.validation.checks.map(
      (c) =>
        `               ${c.ok ? "ok  " : "FAIL"} ${c.name}${c.problem ? ` — ${c.problem}` : ""}`,
    ),
    `  contents   md5 of every row, original vs restored: ${r.contentsMatch.map((c) => `${c.table} ${c.ok ? "equal" : "DIFFERENT"}`).join(", ")}`,
    ...(r.repository
      ? [`  kept       repository at ${r.repository} (identity.txt beside it)`]
      : ["  cleaned up the throwaway server, repository and key"]),
  ];
}
