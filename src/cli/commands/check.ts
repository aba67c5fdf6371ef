import type { Command } from "commander";
import { durationSeconds } from "../../config/schema.js";
import { runCheck } from "../../engine/check.js";
import { loadIdentities } from "../../engine/repositories.js";
import { loadConfigSkippingBadChannels } from "../../notify/channel-config.js";
import type { CheckResult } from "../../checks/types.js";
import { action } from "../context.js";
import { renderTable } from "../output.js";
import { collect } from "./repo.js";

const EXIT_BY_STATUS = { pass: 0, warn: 1, fail: 2 } as const;

export function registerCheckCommand(program: Command): void {
  program
    .command("check")
    .description(
      "run the backup validation checklist; exit 0 ok, 1 warnings, 2 failures (Nagios-style)",
    )
    .argument("[group]", "only this group: config, backups, restore-test, wal, buckets, objectives")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option(
      "--only <check>",
      "only checks whose id starts with this (repeatable), e.g. backups, wal",
      collect,
      [],
    )
    .option("--deep", "re-read and decrypt stored bytes instead of comparing sizes")
    .option("--no-notify", "do not send alerts")
    .option("--no-switch", "with `check wal`, do not force a segment switch")
    .option(
      "--switch [timeout]",
      "force a WAL segment switch and wait for it to arrive (default with `check wal`: 2m)",
    )
    .option("-i, --identity <file>", "identity for --deep (default: encryption.identityFile)")
    // `--no-switch` defined first makes commander default `switch` to true, which would force a
    // segment switch (and a wait of up to 2m) on every plain `check`: only flags given count.
    .hook("preAction", (command) => {
      if (command.getOptionValueSource("switch") === "default")
        command.setOptionValue("switch", undefined);
    })
    .action(
      action(
        async (
          context,
          group: string | undefined,
          options: {
            repo: string[];
            only: string[];
            deep?: boolean;
            notify?: boolean;
            identity?: string;
            switch?: string | boolean;
          },
        ) => {
          // A broken alert channel is reported as a failing result, not a reason to check nothing.
          const { config, channelProblems } = await loadConfigSkippingBadChannels(
            context.globals.config,
          );
          const identityFile = options.identity ?? config.encryption.identityFile;
          const identities = options.deep && identityFile ? await loadIdentities(identityFile) : [];
          // `check wal` proves archiving end to end unless told not to; elsewhere only on request.
          const switchTimeout =
            options.switch === false
              ? undefined
              : typeof options.switch === "string"
                ? options.switch
                : options.switch === true || group === "wal"
                  ? "2m"
                  : undefined;
          const run = await runCheck(config, {
            repositories: options.repo,
            only: [...options.only, ...(group ? [group] : [])],
            ...(switchTimeout && config.wal
              ? { walSwitchTimeoutMs: durationSeconds(switchTimeout) * 1000 }
              : {}),
            deep: Boolean(options.deep),
            identities,
            notify: options.notify !== false,
            channelProblems,
          });
          const c = context.out.color;
          const paint = (status: CheckResult["status"]) =>
            status === "pass"
              ? c.green("pass")
              : status === "warn"
                ? c.yellow("warn")
                : c.red("FAIL");
          context.out.result(run, () => [
            ...renderTable<CheckResult>(
              [
                { header: "status", value: (r) => paint(r.status) },
                { header: "check", value: (r) => r.id },
                { header: "subject", value: (r) => r.subject ?? "" },
                { header: "result", value: (r) => r.message },
              ],
              run.results,
            ),
            ...run.results
              .filter((r) => r.status !== "pass" && r.hint)
              .map((r) => `${r.id}${r.subject ? ` (${r.subject})` : ""}: ${r.hint}`),
            `overall: ${paint(run.status)}`,
          ]);
          for (const problem of run.notifications?.channelErrors ?? [])
            context.out.warn(`alert via ${problem.channel} failed: ${problem.message}`);
          process.exitCode = EXIT_BY_STATUS[run.status];
        },
      ),
    );
}
