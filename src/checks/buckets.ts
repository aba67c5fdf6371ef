import { closeTargets, resolveBucket } from "../objects/client.js";
import { getVersioning } from "../objects/list.js";
import { PROTECT_RULE_ID, readLifecycleRules } from "../objects/protect.js";
import type { CheckDefinition, CheckResult } from "./types.js";

/**
 * Protected buckets stay protected: versioning Enabled (not Suspended) and lifecycle rules for
 * noncurrent versions in place. Someone "tidying up" a bucket must not silently end the history
 * every undelete depends on.
 */
export const bucketProtection: CheckDefinition = {
  id: "buckets.protection",
  title: "bucket versioning and lifecycle still on",
  async run(context) {
    const results: CheckResult[] = [];
    for (const name of Object.keys(context.config.buckets)) {
      const target = resolveBucket(context.config, name);
      const base = { id: this.id, title: this.title, subject: `${name} (${target.bucket})` };
      try {
        const versioning = await getVersioning(target);
        const rules = await readLifecycleRules(target);
        const problems: string[] = [];
        if (versioning !== "Enabled") problems.push(`versioning is ${versioning || "off"}`);
        if (
          !rules.some((r) => r.ID === PROTECT_RULE_ID) &&
          !rules.some((r) => r.NoncurrentVersionExpiration)
        ) {
          problems.push("no lifecycle rule for noncurrent versions");
        }
        results.push(
          problems.length === 0
            ? {
                ...base,
                status: "pass",
                message: `versioning Enabled, ${rules.length} lifecycle rule(s)`,
              }
            : {
                ...base,
                status: versioning !== "Enabled" ? "fail" : "warn",
                message: problems.join("; "),
                hint: `run \`lifeboat bucket protect ${name}\``,
              },
        );
      } catch (error) {
        results.push({
          ...base,
          status: "fail",
          message: (error as Error).message,
          hint: "check the bucket's name, endpoint and credentials",
        });
      } finally {
        closeTargets(target);
      }
    }
    return results;
  },
};
