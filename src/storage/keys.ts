import { LifeboatError } from "../errors.js";
import type { GetOptions } from "./types.js";

/**
 * Prefix of the local driver's in-flight temporary files. Reserved in every backend so that a
 * repository copied between local and S3 storage lists the same keys.
 */
export const TEMP_PREFIX = ".tmp-";

/** Throws STORAGE_BAD_KEY unless `key` is a well-formed object key; returns it unchanged. */
export function validateKey(key: string): string {
  const problem = keyProblem(key, false);
  if (problem) throw badKey("key", key, problem);
  return key;
}

/**
 * A list prefix may be empty or end in the middle of a segment (`data/ab` matches `data/abc`), so
 * only its complete segments are held to the key rules.
 */
export function validatePrefix(prefix: string): string {
  if (prefix === "") return prefix;
  const problem = keyProblem(prefix, true);
  if (problem) throw badKey("prefix", prefix, problem);
  return prefix;
}

/** Joins parts with `/` (parts may themselves contain `/`) and validates the result. */
export function joinKey(...parts: string[]): string {
  return validateKey(parts.join("/"));
}

/** Byte-wise (UTF-8) order, the order S3 lists keys in; differs from `<` for astral characters. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function keyProblem(key: string, isPrefix: boolean): string | undefined {
  if (typeof key !== "string" || key === "") return "it is empty";
  if (key.startsWith("/")) return "it starts with /";
  if (key.includes("\\")) return "it contains a backslash";
  if (key.includes("\0")) return "it contains a NUL character";
  const segments = key.split("/");
  // The last segment of a prefix is a partial name: `.`, `..` or empty there are still useful.
  const complete = isPrefix ? segments.slice(0, -1) : segments;
  for (const segment of complete) {
    if (segment === "") return "it has an empty segment (// or a trailing /)";
    if (segment === "." || segment === "..") return `it has a "${segment}" segment`;
  }
  if (!isPrefix && segments[segments.length - 1]!.startsWith(TEMP_PREFIX)) {
    return `names starting with ${TEMP_PREFIX} are reserved for temporary files`;
  }
  return undefined;
}

function badKey(what: string, key: string, problem: string): LifeboatError {
  return new LifeboatError(
    "STORAGE_BAD_KEY",
    `invalid storage ${what} ${JSON.stringify(key)}: ${problem}`,
  );
}

/** Validates a get range (`end` inclusive); returns it unchanged. */
export function checkRange(range: GetOptions["range"]): GetOptions["range"] {
  if (range === undefined) return range;
  const { start, end } = range;
  const ok =
    Number.isSafeInteger(start) &&
    start >= 0 &&
    (end === undefined || (Number.isSafeInteger(end) && end >= start));
  if (!ok) throw new LifeboatError("USAGE", `invalid byte range ${JSON.stringify(range)}`);
  return range;
}
