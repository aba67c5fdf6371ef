import type { Command } from "commander";
import { ERROR_TABLE, LifeboatError } from "../../errors.js";
import {
  closeTargets,
  resolveBucket,
  type BucketTarget,
  type ConnectionFlags,
} from "../../objects/client.js";
import type { Context } from "../context.js";

export type { ConnectionFlags };

/** Raw bucket names need a connection: these flags give one (see docs/buckets.md). */
export function connectionOptions(command: Command): Command {
  return command
    .option(
      "--endpoint <url>",
      "S3 endpoint for a raw bucket name (default: the first configured bucket's)",
    )
    .option("--region <region>", "region for a raw bucket name");
}

export function flagsOf(options: ConnectionFlags): ConnectionFlags {
  return {
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.region ? { region: options.region } : {}),
  };
}

export const integer = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new LifeboatError("USAGE", `"${value}" is not a positive integer`);
  return n;
};

/** Resolves the bucket, runs `work`, and always closes its client. */
export async function withBucket<T>(
  context: Context,
  reference: string,
  flags: ConnectionFlags,
  work: (target: BucketTarget) => Promise<T>,
): Promise<T> {
  const { config } = await context.config();
  const target = resolveBucket(config, reference, flagsOf(flags));
  try {
    return await work(target);
  } finally {
    closeTargets(target);
  }
}

/** A non-zero exit for collected per-object failures, after the result was printed. */
export function exitForFailures(codes: string[]): void {
  if (codes.length === 0) return;
  const statuses = codes.map((code) => ERROR_TABLE[code as keyof typeof ERROR_TABLE]?.exit ?? 1);
  process.exitCode = Math.max(1, ...statuses);
}
