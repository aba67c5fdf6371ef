import { durationSeconds } from "../config/schema.js";
import { loadIdentityFile } from "../stream/age/index.js";
import { dbBackups, hours, takenAt } from "./backups.js";
import type { CheckContext, CheckDefinition, CheckResult } from "./types.js";

/**
 * Newest recoverable points beyond logical backups (WAL archives, later streaming replicas)
 * register here, so the RPO estimate uses the best one available without this module knowing them.
 */
export type RecoveryPointSource = (
  context: CheckContext,
  database: string,
) => Promise<{ time: Date; via: string } | undefined>;
const sources: RecoveryPointSource[] = [];
export function registerRecoveryPointSource(source: RecoveryPointSource): void {
  sources.push(source);
}

export const rpoEstimate: CheckDefinition = {
  id: "objectives.rpo",
  title: "data at risk right now is within the RPO",
  async run(context) {
    const rpoMs = durationSeconds(context.config.objectives.rpo) * 1000;
    const results: CheckResult[] = [];
    for (const database of Object.keys(context.config.databases)) {
      const candidates: { time: Date; via: string }[] = [];
      for (const repository of context.repositories) {
        const newest = (await dbBackups(repository)).find((m) => m.source === database);
        if (newest)
          candidates.push({
            time: takenAt(newest),
            via: `backup ${newest.id} in "${repository.name}"`,
          });
      }
      for (const source of sources) {
        const point = await source(context, database).catch(() => undefined);
        if (point) candidates.push(point);
      }
      const best = candidates.sort((a, b) => b.time.getTime() - a.time.getTime())[0];
      const base = { id: this.id, title: this.title, subject: database };
      if (!best) {
        results.push({
          ...base,
          status: "fail",
          message: "nothing is recoverable: no backup found",
          hint: "run `lifeboat backup db`",
        });
        continue;
      }
      const exposure = context.now.getTime() - best.time.getTime();
      results.push({
        ...base,
        status: exposure <= rpoMs ? "pass" : "fail",
        message: `newest recoverable point is ${hours(exposure)} old via ${best.via} (objective ${context.config.objectives.rpo})`,
        ...(exposure <= rpoMs
          ? {}
          : {
              hint: "back up more often, or enable continuous WAL archiving (`lifeboat setup wal`) to bring the RPO to minutes",
            }),
        details: {
          newestPoint: best.time.toISOString(),
          exposureSeconds: Math.round(exposure / 1000),
        },
      });
    }
    return results;
  },
};

export const configuration: CheckDefinition = {
  id: "config.sanity",
  title: "keys readable, repositories reachable",
  async run(context) {
    const results: CheckResult[] = [];
    for (const failure of context.unreachable) {
      results.push({
        id: this.id,
        title: this.title,
        subject: failure.repository,
        status: "fail",
        message: `repository unreachable: ${failure.error.code}: ${failure.error.message}`,
        hint: failure.error.hint,
      });
    }
    for (const repository of context.repositories) {
      results.push({
        id: this.id,
        title: this.title,
        subject: repository.name,
        status: "pass",
        message: `reachable at ${repository.location}`,
      });
    }
    const file = context.config.encryption.identityFile;
    if (context.config.encryption.disabled) {
      results.push({
        id: this.id,
        title: this.title,
        subject: "encryption",
        status: "warn",
        message: "encryption is disabled: backups are stored in plaintext",
        hint: "configure encryption.recipients (the plan requires encryption at rest)",
      });
    } else if (file) {
      try {
        const identities = await loadIdentityFile(file);
        const matching = identities.filter((i) =>
          context.config.encryption.recipients.includes(i.recipient),
        );
        results.push(
          matching.length > 0
            ? {
                id: this.id,
                title: this.title,
                subject: "encryption",
                status: "pass",
                message: `identity file ${file} matches a configured recipient`,
              }
            : {
                id: this.id,
                title: this.title,
                subject: "encryption",
                status: "fail",
                message: `identity file ${file} matches none of the configured recipients: new backups could not be restored with it`,
                hint: "fix encryption.recipients or encryption.identityFile",
              },
        );
      } catch (error) {
        results.push({
          id: this.id,
          title: this.title,
          subject: "encryption",
          status: "fail",
          message: (error as Error).message,
          hint: "fix encryption.identityFile",
        });
      }
    } else {
      results.push({
        id: this.id,
        title: this.title,
        subject: "encryption",
        status: "pass",
        message: `${context.config.encryption.recipients.length} recipient(s) configured; no identity on this host (restores need it elsewhere)`,
      });
    }
    return results;
  },
};
