import { toLifeboatError } from "../errors.js";
import {
  backupIntegrity,
  backupSizes,
  dailyBackups,
  freshBackup,
  offsiteCopies,
  restoreTests,
} from "./backups.js";
import { bucketProtection } from "./buckets.js";
import { configuration, rpoEstimate } from "./objectives.js";
import { walCheck } from "./wal.js";
import type { CheckContext, CheckDefinition, CheckResult } from "./types.js";

const checks: CheckDefinition[] = [
  configuration,
  dailyBackups,
  freshBackup,
  backupIntegrity,
  offsiteCopies,
  backupSizes,
  restoreTests,
  walCheck(),
  bucketProtection,
  rpoEstimate,
];

/** Runs every check (or those whose id starts with one of `only`); one broken check never hides the others. */
export async function runChecks(
  context: CheckContext,
  only: string[] = [],
  extra: CheckDefinition[] = [],
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const check of [...checks.filter((c) => !extra.some((e) => e.id === c.id)), ...extra]) {
    if (
      only.length > 0 &&
      !only.some(
        (prefix) =>
          check.id === prefix || check.id.startsWith(`${prefix}.`) || check.id.startsWith(prefix),
      )
    )
      continue;
    try {
      results.push(...(await check.run(context)));
    } catch (error) {
      const failure = toLifeboatError(error);
      results.push({
        id: check.id,
        title: check.title,
        status: "fail",
        message: `could not check: ${failure.code}: ${failure.message}`,
        hint: failure.hint,
      });
    }
  }
  return results;
}
