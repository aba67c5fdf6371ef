import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { LifeboatError } from "../errors.js";
import type { LifeboatConfig } from "../config/schema.js";
import type { Repository } from "../repository/repository.js";
import { runBackup, type CommittedBackup } from "../repository/writer.js";
import type { EncodeSettings } from "../stream/encode.js";
import type { AgeIdentity } from "../stream/age/index.js";
import type { Manifest } from "../repository/format.js";

export function encodingFromConfig(config: LifeboatConfig): EncodeSettings {
  return {
    compression: config.compression.algorithm,
    ...(config.compression.level === undefined ? {} : { level: config.compression.level }),
    threads: config.compression.threads,
    recipients: config.encryption.disabled ? [] : config.encryption.recipients,
  };
}

export interface FileInput {
  /** Object name in the backup. */
  name: string;
  open(): Readable;
}

/** Inputs for paths on disk (regular files only) or `-` for stdin. */
export async function fileInputs(paths: string[], stdinName = "stdin"): Promise<FileInput[]> {
  const inputs: FileInput[] = [];
  const used = new Set<string>();
  for (const given of paths) {
    if (given === "-") {
      inputs.push({ name: uniqueName(sanitise(stdinName), used), open: () => process.stdin });
      continue;
    }
    const info = await stat(given).catch((error: unknown) => {
      throw new LifeboatError("USAGE", `cannot read ${given}: ${(error as Error).message}`, {
        hint: "check the path",
      });
    });
    if (!info.isFile())
      throw new LifeboatError("USAGE", `${given} is not a regular file`, {
        hint: "pass files, not directories",
      });
    inputs.push({
      name: uniqueName(sanitise(path.basename(given)), used),
      open: () => createReadStream(given, { highWaterMark: 1 << 20 }),
    });
  }
  return inputs;
}

export async function backupFiles(
  repositories: Repository[],
  config: LifeboatConfig,
  inputs: FileInput[],
  options: { source?: string; labels?: Record<string, string> } = {},
): Promise<CommittedBackup> {
  return runBackup(
    repositories,
    {
      kind: "files",
      source: options.source ?? "files",
      labels: options.labels ?? {},
      encoding: encodingFromConfig(config),
      operation: "backup files",
    },
    async (session) => {
      for (const input of inputs) await session.addObject(input.name, input.open());
      return { files: inputs.map((i) => i.name) };
    },
  );
}

/** Restores every object of a backup into `directory`; each file appears only once fully verified. */
export async function restoreFiles(
  repository: Repository,
  manifest: Manifest,
  directory: string,
  identities: readonly AgeIdentity[],
  options: { overwrite?: boolean; only?: string[] } = {},
): Promise<{ name: string; path: string; bytes: number }[]> {
  const restored = [];
  await mkdir(directory, { recursive: true });
  const wanted = options.only && options.only.length > 0 ? new Set(options.only) : undefined;
  for (const record of manifest.objects) {
    if (wanted && !wanted.has(record.name)) continue;
    const target = path.join(directory, ...record.name.split("/"));
    if (!options.overwrite && (await stat(target).catch(() => undefined))) {
      throw new LifeboatError("USAGE", `${target} exists`, {
        hint: "restore into an empty directory, or pass --overwrite",
      });
    }
    await mkdir(path.dirname(target), { recursive: true });
    const temporary = `${target}.lifeboat-${randomBytes(4).toString("hex")}.partial`;
    try {
      await pipeline(
        await repository.openObject(manifest, record, { identities }),
        createWriteStream(temporary, { mode: 0o600 }),
      );
      await rename(temporary, target);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
    restored.push({ name: record.name, path: target, bytes: record.plain.bytes });
  }
  if (wanted) {
    const missing = [...wanted].filter((name) => !manifest.objects.some((o) => o.name === name));
    if (missing.length > 0)
      throw new LifeboatError("USAGE", `backup ${manifest.id} has no object ${missing.join(", ")}`);
  }
  return restored;
}

function sanitise(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._-]+/, "");
  return cleaned || "file";
}

function uniqueName(name: string, used: Set<string>): string {
  let candidate = name;
  for (let n = 2; used.has(candidate); n++) candidate = `${name}.${n}`;
  used.add(candidate);
  return candidate;
}
