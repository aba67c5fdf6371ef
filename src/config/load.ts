import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { LifeboatError } from "../errors.js";
import { configSchema, type LifeboatConfig } from "./schema.js";

export const CONFIG_ENV = "LIFEBOAT_CONFIG";
export const DEFAULT_CONFIG_NAME = "lifeboat.yaml";

export interface LoadedConfig {
  config: LifeboatConfig;
  /** Absolute path of the file it came from. */
  file: string;
}

export interface ConfigProblem {
  path: string;
  message: string;
}

/** `--config` beats LIFEBOAT_CONFIG beats ./lifeboat.yaml. */
export function resolveConfigPath(flag?: string, env = process.env): string | undefined {
  if (flag) return path.resolve(flag);
  if (env[CONFIG_ENV]) return path.resolve(env[CONFIG_ENV]);
  const local = path.resolve(DEFAULT_CONFIG_NAME);
  return existsSync(local) ? local : undefined;
}

export async function loadConfig(flag?: string, env = process.env): Promise<LoadedConfig> {
  const file = resolveConfigPath(flag, env);
  if (!file) {
    throw new LifeboatError(
      "CONFIG_NOT_FOUND",
      `no configuration: ${DEFAULT_CONFIG_NAME} is not in ${process.cwd()} and neither --config nor ${CONFIG_ENV} is set`,
    );
  }
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new LifeboatError("CONFIG_NOT_FOUND", `cannot read configuration ${file}`, {
      cause: error,
    });
  }
  return { config: parseConfigText(text, file, env), file };
}

/** Parses, interpolates and validates; every failure names the file and the field. */
export function parseConfigText(
  text: string,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): LifeboatConfig {
  const raw = parseYaml(text, file);
  const interpolated = interpolateEnv(raw, [], file, env);
  const result = configSchema.safeParse(interpolated ?? {});
  if (!result.success) {
    const problems = describeIssues(result.error.issues);
    const first = problems[0] ?? { path: "(root)", message: "invalid" };
    const more =
      problems.length > 1
        ? ` (and ${problems.length - 1} more problem(s); run \`lifeboat config validate\`)`
        : "";
    throw new LifeboatError("CONFIG_INVALID", `${file}: ${first.path}: ${first.message}${more}`, {
      data: { file, problems },
    });
  }
  return resolvePaths(result.data, path.dirname(path.resolve(file)));
}

/**
 * Relative paths in the file mean "relative to the file", not to wherever lifeboat happens to be
 * started (cron and systemd start it in / or $HOME).
 */
function resolvePaths(config: LifeboatConfig, base: string): LifeboatConfig {
  const at = (p: string) => (path.isAbsolute(p) ? p : path.resolve(base, p));
  for (const repository of Object.values(config.repositories)) {
    if (repository.type === "local") repository.path = at(repository.path);
  }
  if (config.encryption.identityFile)
    config.encryption.identityFile = at(config.encryption.identityFile);
  for (const database of Object.values(config.databases)) {
    if (database.passwordFile) database.passwordFile = at(database.passwordFile);
    if (database.binDir) database.binDir = at(database.binDir);
  }
  if (config.wal?.spoolDir) config.wal.spoolDir = at(config.wal.spoolDir);
  if (config.notifications.stateFile)
    config.notifications.stateFile = at(config.notifications.stateFile);
  return config;
}

function parseYaml(text: string, file: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const error = doc.errors[0];
  if (error) {
    const pos = error.linePos?.[0];
    const where = pos ? `${file}:${pos.line}:${pos.col}` : file;
    const message = (error.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "");
    throw new LifeboatError("CONFIG_PARSE", `${where}: ${message}`);
  }
  return doc.toJS();
}

const ENV_REFERENCE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in string values (never keys, never the raw text, so a
 * variable cannot inject YAML structure). `$$` is a literal `$`. Values are never echoed in errors.
 */
export function interpolateEnv(
  value: unknown,
  at: (string | number)[],
  file: string,
  env: NodeJS.ProcessEnv,
): unknown {
  if (typeof value === "string") {
    return value.replace(
      ENV_REFERENCE,
      (whole, variable: string | undefined, fallback: string | undefined) => {
        if (whole === "$$") return "$";
        const found = env[variable as string];
        if (found !== undefined && found !== "") return found;
        if (fallback !== undefined) return fallback;
        throw new LifeboatError(
          "CONFIG_ENV_MISSING",
          `${file}: ${formatPath(at)}: environment variable ${variable} is not set`,
        );
      },
    );
  }
  if (Array.isArray(value))
    return value.map((item, index) => interpolateEnv(item, [...at, index], file, env));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [
        key,
        interpolateEnv(item, [...at, key], file, env),
      ]),
    );
  }
  return value;
}

export function describeIssues(issues: readonly z.core.$ZodIssue[]): ConfigProblem[] {
  return issues.map((issue) => ({ path: formatPath(issue.path), message: describeIssue(issue) }));
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === "invalid_type" && /received undefined/.test(issue.message)) {
    return `required (expected ${issue.expected})`;
  }
  if (issue.code === "unrecognized_keys") {
    return `unknown field(s) ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}; check the spelling`;
  }
  if (issue.code === "invalid_union" && "discriminator" in issue && issue.discriminator) {
    return `unknown ${String(issue.discriminator)}; expected one of the documented values`;
  }
  if (issue.code === "invalid_key") return "invalid name: use lowercase letters, digits, - and _";
  return issue.message.replace(/^Invalid input: /, "");
}

function formatPath(at: readonly PropertyKey[]): string {
  if (at.length === 0) return "(root)";
  return at
    .map((part, index) =>
      typeof part === "number" ? `[${part}]` : `${index === 0 ? "" : "."}${String(part)}`,
    )
    .join("");
}
