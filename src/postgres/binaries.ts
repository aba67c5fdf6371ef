import { execFileSync } from "node:child_process";
import { accessSync, constants, readdirSync, realpathSync, statSync } from "node:fs";
import { basename, delimiter, isAbsolute, join } from "node:path";
import { LifeboatError } from "../errors.js";

/**
 * Finds PostgreSQL executables by major version. Versions matter: pg_dump refuses servers newer
 * than itself and pg_basebackup/pg_ctl must match the data directory's major, so callers ask for
 * a major and get the binary that belongs to it, not whatever is first on PATH.
 */

export const BINDIR_ENV = "LIFEBOAT_PG_BINDIR";
const DEBIAN_ROOT = "/usr/lib/postgresql";

export interface PgBinary {
  /** Absolute path of the executable. */
  path: string;
  binDir: string;
  major: number;
}

export interface FindPgBinOptions {
  /** Wanted major version; without it the override directory, else the newest install, wins. */
  major?: number;
  /** Accept the oldest newer major when the exact one is missing (pg_dump reads older servers). */
  allowNewer?: boolean;
}

// Tools Debian ships in postgresql-client-N; everything else comes with the server, postgresql-N.
const CLIENT_TOOLS = new Set([
  "psql",
  "pg_dump",
  "pg_dumpall",
  "pg_restore",
  "pg_basebackup",
  "pg_receivewal",
  "pg_recvlogical",
  "pg_verifybackup",
  "pg_isready",
]);

interface Candidate {
  binDir: string;
  /** Known from the directory layout; otherwise asked from the tool itself. */
  major?: number;
  override?: boolean;
}

/** Search order: $LIFEBOAT_PG_BINDIR, /usr/lib/postgresql/<major>/bin (newest first), then PATH. */
function candidates(): Candidate[] {
  const list: Candidate[] = [];
  const override = process.env[BINDIR_ENV];
  if (override) list.push({ binDir: override, override: true });
  for (const major of debianMajors())
    list.push({ binDir: join(DEBIAN_ROOT, String(major), "bin"), major });
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && isAbsolute(dir)) list.push({ binDir: dir });
  }
  return list;
}

function debianMajors(): number[] {
  let names: string[];
  try {
    names = readdirSync(DEBIAN_ROOT);
  } catch {
    return [];
  }
  return names
    .filter((name) => /^\d+$/.test(name) && isDirectory(join(DEBIAN_ROOT, name, "bin")))
    .map(Number)
    .sort((a, b) => b - a);
}

/** Every installation of `tool` that can be found, in search order. */
function installations(tool: string): PgBinary[] {
  const found: PgBinary[] = [];
  const seen = new Set<string>();
  for (const candidate of candidates()) {
    const path = join(candidate.binDir, tool);
    if (!isExecutable(path)) continue;
    let real: string;
    try {
      real = realpathSync(path);
    } catch {
      continue;
    }
    // Debian's /usr/bin wrapper picks a version at run time from cluster config; we want a fixed one.
    if (basename(real) === "pg_wrapper" || seen.has(real)) continue;
    seen.add(real);
    const major = candidate.major ?? versionOf(path);
    if (major !== undefined) found.push({ path, binDir: candidate.binDir, major });
  }
  return found;
}

/** The executable `tool` for the wanted major, or undefined. Never throws. */
export function findPgBin(tool: string, options: FindPgBinOptions = {}): PgBinary | undefined {
  const all = installations(tool);
  const { major } = options;
  if (major === undefined) {
    const override = process.env[BINDIR_ENV];
    return (
      all.find((bin) => bin.binDir === override) ?? [...all].sort((a, b) => b.major - a.major)[0]
    );
  }
  const exact = all.find((bin) => bin.major === major);
  if (exact || !options.allowNewer) return exact;
  return all.filter((bin) => bin.major > major).sort((a, b) => a.major - b.major)[0];
}

/** Majors for which `tool` is installed, ascending. Defaults to the server (postgres). */
export function installedMajors(tool = "postgres"): number[] {
  return [...new Set(installations(tool).map((bin) => bin.major))].sort((a, b) => a - b);
}

/** Absolute path of `tool` for `major` (newest when omitted); throws TOOL_MISSING naming the package. */
export function pgTool(
  tool: string,
  major?: number,
  options: { allowNewer?: boolean } = {},
): string {
  return requirePgBin(tool, { ...options, major }).path;
}

export function requirePgBin(tool: string, options: FindPgBinOptions = {}): PgBinary {
  const found = findPgBin(tool, options);
  if (found) return found;
  const { major } = options;
  const pkg = `${aptPackage(tool)}${major === undefined ? "" : `-${major}`}`;
  const others = installedMajors(tool);
  const wanted =
    major === undefined
      ? "PostgreSQL"
      : `PostgreSQL ${major}${options.allowNewer ? " or newer" : ""}`;
  const seen = others.length > 0 ? `; found only ${others.join(", ")}` : "";
  throw new LifeboatError("TOOL_MISSING", `${tool} from ${wanted} is not installed${seen}`, {
    hint: `install it (Debian/Ubuntu: apt-get install ${pkg}), or set ${BINDIR_ENV} to its bin directory`,
    data: { tool, major, package: pkg, installedMajors: others },
  });
}

/** The Debian/Ubuntu package (without the -<major> suffix) that ships `tool`. */
export function aptPackage(tool: string): string {
  return CLIENT_TOOLS.has(tool) ? "postgresql-client" : "postgresql";
}

const versionCache = new Map<string, number | undefined>();

/** Asks a binary for its major (`pg_dump (PostgreSQL) 15.18 ...` → 15); undefined if it won't say. */
export function versionOf(path: string): number | undefined {
  if (versionCache.has(path)) return versionCache.get(path);
  let major: number | undefined;
  try {
    const out = execFileSync(path, ["--version"], {
      encoding: "utf8",
      timeout: 10_000,
      stdio: "pipe",
    });
    const match = /\(PostgreSQL\)\s+(\d+)/.exec(out);
    major = match ? Number(match[1]) : undefined;
  } catch {
    major = undefined;
  }
  versionCache.set(path, major);
  return major;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
