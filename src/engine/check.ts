import type { LifeboatConfig } from "../config/schema.js";
import { runChecks } from "../checks/registry.js";
import { walCheck } from "../checks/wal.js";
import { worst, type CheckResult, type CheckStatus } from "../checks/types.js";
import { notify, type NotifyResult } from "../notify/alerts.js";
import type { ChannelProblem } from "../notify/channel-config.js";
import { appendRunQuietly } from "../repository/history.js";
import type { AgeIdentity } from "../stream/age/index.js";
import { LifeboatError, toLifeboatError } from "../errors.js";
import { Repository } from "../repository/repository.js";
import type { RepositoryFailure } from "../repository/writer.js";
import { openRepositoriesTolerant, selectRepositoryNames, storageFor } from "./repositories.js";

export interface CheckRun {
  status: CheckStatus;
  results: CheckResult[];
  notifications?: NotifyResult;
  durationMs: number;
}

/** Opens what it can: an unreachable repository is a check result, not a crash. */
export async function openForChecks(
  config: LifeboatConfig,
  names: string[],
): Promise<{ repositories: Repository[]; unreachable: RepositoryFailure[] }> {
  try {
    const { repositories, failures } = await openRepositoriesTolerant(config, names);
    return { repositories, unreachable: failures };
  } catch {
    const unreachable: RepositoryFailure[] = [];
    for (const name of selectRepositoryNames(config, names)) {
      await Repository.open(name, storageFor(config, name)).catch((error: unknown) =>
        unreachable.push({ repository: name, error: toLifeboatError(error) }),
      );
    }
    return { repositories: [], unreachable };
  }
}

export async function runCheck(
  config: LifeboatConfig,
  options: {
    repositories?: string[];
    only?: string[];
    deep?: boolean;
    identities?: AgeIdentity[];
    notify?: boolean;
    now?: Date;
    /** Force a WAL segment switch and wait this long for it to arrive. */
    walSwitchTimeoutMs?: number;
    /** Alert channels left out of the configuration; reported whatever checks are selected. */
    channelProblems?: ChannelProblem[];
  },
): Promise<CheckRun> {
  const started = new Date();
  const now = options.now ?? started;
  const { repositories, unreachable } = await openForChecks(config, options.repositories ?? []);
  const results = await runChecks(
    {
      config,
      repositories,
      unreachable,
      now,
      deep: Boolean(options.deep),
      identities: options.identities ?? [],
    },
    options.only ?? [],
    options.walSwitchTimeoutMs ? [walCheck({ switchTimeoutMs: options.walSwitchTimeoutMs })] : [],
  );
  if (results.length === 0)
    throw new LifeboatError("USAGE", `no check matches ${(options.only ?? []).join(", ")}`);
  results.unshift(
    ...(options.channelProblems ?? []).map((problem): CheckResult => ({
      id: "config.notifications",
      title: "alert channels usable",
      subject: problem.channel,
      status: "fail",
      message: `${problem.message}; this alert channel is skipped`,
      hint: "fix the channel in the configuration (`lifeboat config validate` lists every problem)",
    })),
  );
  const status = worst(results);
  await appendRunQuietly(repositories, {
    operation: "check",
    result: status === "fail" ? "failed" : status === "warn" ? "partial" : "ok",
    startedAt: started,
    details: {
      status,
      results: results.map((r) => ({
        id: r.id,
        subject: r.subject,
        status: r.status,
        message: r.message,
      })),
    },
  });
  let notifications: NotifyResult | undefined;
  if (options.notify !== false) {
    notifications = await notify(
      config,
      results.map((r) => ({
        key: `check:${r.id}:${r.subject ?? ""}`,
        source: "check",
        status: r.status === "pass" ? "ok" : r.status,
        title: r.title,
        ...(r.subject ? { subject: r.subject } : {}),
        message: r.message,
        ...(r.hint ? { hint: r.hint } : {}),
      })),
      now,
    );
  }
  return {
    status,
    results,
    ...(notifications ? { notifications } : {}),
    durationMs: Date.now() - started.getTime(),
  };
}
