import type { Command } from "commander";
import { LifeboatError } from "../errors.js";
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
export function action<A extends unknown[]>(
  handler: (context: Context, ...args: A) => Promise<void>,
): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const command = args[args.length - 1] as Command;
    const context = new Context(globalsOf(command));
    await handler(context, ...(args.slice(0, -1) as A));
  };
}
