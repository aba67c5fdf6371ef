import { readFile } from "node:fs/promises";
import { parse as parseYaml, stringify } from "yaml";
import {
  describeIssues,
  interpolateEnv,
  loadConfig,
  parseConfigText,
  resolveConfigPath,
  type LoadedConfig,
} from "../config/load.js";
import { channelSchema } from "../config/monitoring-schema.js";
import { isLifeboatError, toLifeboatError } from "../errors.js";

/** An alert channel left out of the configuration because it cannot be used as written. */
export interface ChannelProblem {
  /** Where it is, e.g. `notifications.channels[0]`. */
  channel: string;
  message: string;
}

/**
 * Loads the configuration like every command does, except that a broken alert channel (malformed
 * URL, missing field, unset `${VAR}`) is left out and reported instead of stopping everything:
 * `check` must still report every other result, and alert through the channels that work.
 * Any other configuration problem is thrown as usual.
 */
export async function loadConfigSkippingBadChannels(
  flag?: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<LoadedConfig & { channelProblems: ChannelProblem[] }> {
  try {
    return { ...(await loadConfig(flag, env)), channelProblems: [] };
  } catch (error) {
    if (!isLifeboatError(error, "CONFIG_INVALID") && !isLifeboatError(error, "CONFIG_ENV_MISSING"))
      throw error;
    const file = resolveConfigPath(flag, env);
    if (!file) throw error;
    let raw: { notifications?: { channels?: unknown } } | undefined;
    try {
      raw = parseYaml(await readFile(file, "utf8")) as typeof raw;
    } catch {
      throw error;
    }
    const channels = raw?.notifications?.channels;
    if (!raw?.notifications || !Array.isArray(channels)) throw error;
    const problems: ChannelProblem[] = [];
    const kept: unknown[] = [];
    channels.forEach((channel: unknown, index) => {
      const at = `notifications.channels[${index}]`;
      try {
        const parsed = channelSchema.safeParse(
          interpolateEnv(channel, ["notifications", "channels", index], file, env),
        );
        if (parsed.success) {
          kept.push(channel);
          return;
        }
        problems.push({
          channel: at,
          message: describeIssues(parsed.error.issues)
            .map((p) => `${at}${p.path === "(root)" ? "" : `.${p.path}`}: ${p.message}`)
            .join("; "),
        });
      } catch (failure) {
        // An unset ${VAR}: the message names the file, the field and the variable, never a value.
        problems.push({ channel: at, message: toLifeboatError(failure).message });
      }
    });
    if (problems.length === 0) throw error;
    raw.notifications.channels = kept;
    try {
      return {
        config: parseConfigText(stringify(raw), file, env),
        file,
        channelProblems: problems,
      };
    } catch {
      throw error; // something else is wrong too: report the original problem
    }
  }
}
