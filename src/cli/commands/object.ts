import type { Command } from "commander";
import { LifeboatError } from "../../errors.js";
import { parseTime } from "../../objects/client.js";
import { objectVersions, restoreObject } from "../../objects/versions.js";
import { action } from "../context.js";
import { formatBytes, renderTable } from "../output.js";
import { connectionOptions, withBucket, type ConnectionFlags } from "./bucket-options.js";

export function registerObjectCommands(program: Command): void {
  const object = program
    .command("object")
    .description("see and recover single objects: versions, undelete, roll back");

  connectionOptions(
    object
      .command("versions")
      .description("list an object's versions and delete markers, newest first")
      .argument("<bucket>", "configured bucket name, or a bucket name")
      .argument("<key>", "object key, e.g. onboarding/1234/passport.pdf"),
  ).action(
    action(async (context, reference: string, key: string, options: ConnectionFlags) => {
      const versions = await withBucket(context, reference, options, (target) =>
        objectVersions(target, key),
      );
      context.out.result({ key, versions }, () =>
        versions.length === 0
          ? `no versions of ${key}`
          : renderTable(
              [
                { header: "version", value: (v) => v.versionId },
                { header: "modified", value: (v) => v.lastModified },
                {
                  header: "size",
                  value: (v) => (v.deleteMarker ? "" : formatBytes(v.size)),
                  align: "right",
                },
                {
                  header: "state",
                  value: (v) =>
                    `${v.deleteMarker ? "delete marker" : "version"}${v.isLatest ? " (current)" : ""}`,
                },
                { header: "etag", value: (v) => v.etag },
              ],
              versions,
            ),
      );
    }),
  );

  connectionOptions(
    object
      .command("restore")
      .description(
        "undelete an object, or make an older version current again (a copy on top: history is kept)",
      )
      .argument("<bucket>", "configured bucket name, or a bucket name")
      .argument("<key>", "object key")
      .option("--version <id>", "the version to bring back")
      .option("--at <time>", "bring back the state at this time (ISO 8601, or a duration ago)")
      .option("-n, --dry-run", "show what would be done"),
  ).action(
    action(
      async (
        context,
        reference: string,
        key: string,
        options: ConnectionFlags & { version?: string; at?: string; dryRun?: boolean },
      ) => {
        if (options.version && options.at) {
          throw new LifeboatError("USAGE", "give --version or --at, not both");
        }
        const result = await withBucket(context, reference, options, (target) =>
          restoreObject(target, key, {
            ...(options.version ? { versionId: options.version } : {}),
            ...(options.at ? { at: parseTime(options.at) } : {}),
            dryRun: Boolean(options.dryRun),
          }),
        );
        const { plan } = result;
        const would = result.dryRun ? "would be" : "was";
        context.out.result(result, () => {
          if (plan.action === "none") return `${key}: nothing to do (${plan.reason})`;
          if (plan.action === "delete")
            return `${key}: a delete marker ${would} added (${plan.reason})`;
          return [
            `${key}: version ${plan.from.versionId} of ${plan.from.lastModified} (${formatBytes(plan.from.size)}) ${would} copied to be current`,
            ...(result.newVersionId ? [`  new current version: ${result.newVersionId}`] : []),
            `  previous current: ${plan.current ? `${plan.current.deleteMarker ? "delete marker" : "version"} ${plan.current.versionId} (kept in the history)` : "none"}`,
          ];
        });
      },
    ),
  );
}
