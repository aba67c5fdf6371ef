import type { Command } from "commander";
import { LifeboatError, toLifeboatError } from "../errors.js";
import { notify } from "../notify/alerts.js";
import { loadConfig, type LoadedConfig } from "../config/load.js";
import { openRepositories, loadIdentities } from "../engine/repositories.js";
import type { Repository } from "../repository/repository.js";
import type { AgeIdentity } from "../stream/age/index.js";
import { Output, colorWanted } from "./output.js";

export interface GlobalOptions {
  config?: string;
  json?: boolean;
  verbose?: boolean;
  color?: boolean;
}

/** What every command gets: output, and lazy access to configuration, repositories and keys. */
export class Context {
  readonly out: Output;
  private loaded: Promise<LoadedConfig> | undefined;

  constructor(readonly globals: GlobalOptions) {
    this.out = new Output(
      Boolean(globals.json),
      colorWanted(globals.color),
      Boolean(globals.verbose),
    );
  }

  config(): Promise<LoadedConfig> {
    this.loaded ??= loadConfig(this.globals.config);
    return this.loaded;
  }

  /** Opens the named repositories (all configured ones when `names` is empty). */
  async repositories(names: string[] = []): Promise<Repository[]> {
    const { config } = await this.config();
    return openRepositories(config, names, (message) => this.out.detail(message));
  }

  /** Identities from --identity, else encryption.identityFile. */
  async identities(flag?: string): Promise<AgeIdentity[]> {
    const { config } = await this.config();
    const file = flag ?? config.encryption.identityFile;
    if (!file) {
      if (config.encryption.disabled) return [];
      throw new LifeboatError(
        "KEY_NOT_FOUND",
        "no identity file: restoring encrypted data needs the private key",
        {
          hint: "pass --identity <file> or set encryption.identityFile",
        },
      );
    }
    return loadIdentities(file);
  }
}

/** The global options of the root program, wherever the action is. */
export function globalsOf(command: Command): GlobalOptions {
  let root: Command = command;
  while (root.parent) root = root.parent;
  return root.opts<GlobalOptions>();
}

/** Wraps a command action: builds the context; errors go to the single top-level handler. */
export interface ActionOptions {
  /**
   * Alert on this run's outcome (backup, restore, verify): a failure (thrown, or a non-zero exit
   * code), and a recovery or success summary per `notifications.notifyOn`.
   */
  notify?: string;
}

export function action<A extends unknown[]>(
  handler: (context: Context, ...args: A) => Promise<void>,
  options: ActionOptions = {},
): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const command = args[args.length - 1] as Command;
    const context = new Context(globalsOf(command));
    const handlerArgs = args.slice(0, -1) as A;
    if (!options.notify) {
      await handler(context, ...handlerArgs);
      return;
    }
    const subject = [
      command.parent?.name(),
      command.name(),
      ...handlerArgs.filter((a) => typeof a === "string"),
    ]
      .filter((part) => part && part !== "lifeboat")
      .join(" ");
    try {
      await handler(context, ...handlerArgs);
    } catch (error) {
      await alertRun(context, options.notify, subject, toLifeboatError(error));
      throw error;
    }
    const failed = typeof process.exitCode === "number" && process.exitCode !== 0;
    await alertRun(
      context,
      options.notify,
      subject,
      failed
        ? new LifeboatError("ABORTED", `finished with exit status ${process.exitCode}`, {
            hint: "see the command's output for what failed",
          })
        : undefined,
    );
  };
}

/** Alerting never changes the outcome of the run it reports on. */
async function alertRun(
  context: Context,
  source: string,
  subject: string,
  failure: LifeboatError | undefined,
): Promise<void> {
  try {
    const { config } = await context.config();
    if (config.notifications.channels.length === 0) return;
    const result = await notify(config, [
      {
        key: `run:${subject}`,
        source,
        status: failure ? "fail" : "ok",
        title: `lifeboat ${subject} ${failure ? "failed" : "succeeded"}`,
        subject,
        message: failure ? `${failure.code}: ${failure.message}` : "completed successfully",
        ...(failure ? { hint: failure.hint } : {}),
      },
    ]);
    for (const problem of result.channelErrors)
      context.out.warn(`alert via ${problem.channel} failed: ${problem.message}`);
  } catch (error) {
    context.out.warn(`could not send alerts: ${toLifeboatError(error).message}`);
  }
}
