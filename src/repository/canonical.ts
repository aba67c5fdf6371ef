import { createHash } from "node:crypto";

/**
 * Canonical JSON (object keys sorted, no whitespace) so a checksum does not depend on how a
 * writer happened to order or indent fields.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, item]) => item !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(",")}}`;
}

export function sha256Hex(text: string | Buffer): string {
  return createHash("sha256").update(text).digest("hex");
}

/** `sha256:<hex>` of the canonical form of `document` without its own `checksum` field. */
export function documentChecksum(document: Record<string, unknown>): string {
  const { checksum: _ignored, ...rest } = document;
  return `sha256:${sha256Hex(canonicalJson(rest))}`;
}

/** Adds the checksum and renders the stored form (indented: people read these by hand). */
export function sealDocument<T extends Record<string, unknown>>(document: T): string {
  const sealed = { ...document, checksum: documentChecksum(document) };
  return `${JSON.stringify(sealed, null, 2)}\n`;
}

/** True when the document's checksum matches its content. */
export function checksumMatches(document: Record<string, unknown>): boolean {
  return typeof document.checksum === "string" && document.checksum === documentChecksum(document);
}
