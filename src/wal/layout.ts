/**
 * WAL file names, LSN arithmetic and the repository keys of archived WAL (see docs/DESIGN.md,
 * "WAL archive"). Pure and free of heavy imports: the archive_command fast path loads this.
 *
 *   wal/<timeline>/<name>.json                      record: facts + checksum; commits the file
 *   wal/<timeline>/<name>-<sha16>.zst.age           data, content-addressed (never overwritten)
 *   wal/restore-points/<name>.json                  named restore points made by lifeboat
 */

export const WAL_PREFIX = "wal/";
export const RESTORE_POINT_PREFIX = "wal/restore-points/";
export const DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024;
export const RECORD_SUFFIX = ".json";

export type WalFileKind = "segment" | "partial" | "history" | "backup";

export interface WalName {
  name: string;
  kind: WalFileKind;
  timeline: number;
  /** The 24-hex segment name (segment, partial, backup label); undefined for history files. */
  segment?: string;
}

const SEGMENT = /^[0-9A-F]{24}$/;
const PARTIAL = /^([0-9A-F]{24})\.partial$/;
const HISTORY = /^([0-9A-F]{8})\.history$/;
const BACKUP = /^([0-9A-F]{24})\.[0-9A-F]{8}\.backup$/;

/** Classifies a file PostgreSQL archives or restores; undefined for anything else. */
export function parseWalName(name: string): WalName | undefined {
  if (SEGMENT.test(name)) return { name, kind: "segment", timeline: tliOf(name), segment: name };
  let match = PARTIAL.exec(name);
  if (match) return { name, kind: "partial", timeline: tliOf(name), segment: match[1]! };
  match = HISTORY.exec(name);
  if (match) return { name, kind: "history", timeline: tliOf(name) };
  match = BACKUP.exec(name);
  if (match) return { name, kind: "backup", timeline: tliOf(name), segment: match[1]! };
  return undefined;
}

function tliOf(name: string): number {
  return Number.parseInt(name.slice(0, 8), 16);
}

export const timelineHex = (timeline: number) =>
  timeline.toString(16).toUpperCase().padStart(8, "0");

export const historyName = (timeline: number) => `${timelineHex(timeline)}.history`;

export function segmentsPerXLogId(segmentSize: number): number {
  return 0x1_0000_0000 / segmentSize;
}

/** Position of a segment in the WAL (independent of timeline). */
export function segmentNumber(segment: string, segmentSize = DEFAULT_SEGMENT_SIZE): number {
  const log = Number.parseInt(segment.slice(8, 16), 16);
  const seg = Number.parseInt(segment.slice(16, 24), 16);
  return log * segmentsPerXLogId(segmentSize) + seg;
}

export function segmentName(
  timeline: number,
  segno: number,
  segmentSize = DEFAULT_SEGMENT_SIZE,
): string {
  const per = segmentsPerXLogId(segmentSize);
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, "0");
  return `${timelineHex(timeline)}${hex(Math.floor(segno / per))}${hex(segno % per)}`;
}

/** `16/B374D848` → 0x16B374D848n. */
export function parseLsn(text: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!match) throw new Error(`not an LSN: ${text}`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(lsn: bigint): string {
  const hi = (lsn >> 32n).toString(16).toUpperCase();
  const lo = (lsn & 0xffff_ffffn).toString(16).toUpperCase();
  return `${hi}/${lo}`;
}

export function isLsn(text: string): boolean {
  return /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(text.trim());
}

export function lsnSegment(lsn: bigint, segmentSize = DEFAULT_SEGMENT_SIZE): number {
  return Number(lsn / BigInt(segmentSize));
}

export function segmentStartLsn(segno: number, segmentSize = DEFAULT_SEGMENT_SIZE): bigint {
  return BigInt(segno) * BigInt(segmentSize);
}

/** The segment after `segment` on the same timeline. */
export function nextSegmentName(segment: string, segmentSize = DEFAULT_SEGMENT_SIZE): string {
  return segmentName(tliOf(segment), segmentNumber(segment, segmentSize) + 1, segmentSize);
}

export const walDir = (timeline: number) => `${WAL_PREFIX}${timelineHex(timeline)}/`;

/** The record (commit document) of an archived file. */
export function walRecordKey(name: WalName): string {
  return `${walDir(name.timeline)}${name.name}${RECORD_SUFFIX}`;
}

/**
 * Data objects are named after their plaintext hash, so a retried or concurrent upload never
 * overwrites bytes a committed record points at.
 */
export function walDataKey(name: WalName, plainSha256: string, storedSuffix: string): string {
  return `${walDir(name.timeline)}${name.name}-${plainSha256.slice(0, 16)}${storedSuffix}`;
}

export const restorePointKey = (name: string) => `${RESTORE_POINT_PREFIX}${name}${RECORD_SUFFIX}`;

export interface ParsedWalKey {
  role: "record" | "data";
  name: WalName;
}

/** What a key under wal/<timeline>/ is; undefined for restore points and strays. */
export function parseWalKey(key: string): ParsedWalKey | undefined {
  const match = /^wal\/([0-9A-F]{8})\/([^/]+)$/.exec(key);
  if (!match) return undefined;
  const file = match[2]!;
  if (file.endsWith(RECORD_SUFFIX)) {
    const name = parseWalName(file.slice(0, -RECORD_SUFFIX.length));
    return name && timelineHex(name.timeline) === match[1] ? { role: "record", name } : undefined;
  }
  const data = /^(.+)-[0-9a-f]{16}(\..+)?$/.exec(file);
  const name = data ? parseWalName(data[1]!) : undefined;
  return name && timelineHex(name.timeline) === match[1] ? { role: "data", name } : undefined;
}

export interface WalPageHeader {
  timeline: number;
  pageAddress: bigint;
  systemIdentifier: string;
  segmentSize: number;
  blockSize: number;
}

const XLP_LONG_HEADER = 0x0002;

/**
 * The long page header that starts every segment (XLogLongPageHeaderData, little-endian):
 * magic u16, info u16, tli u32, pageaddr u64, rem_len u32 (+pad), sysid u64, seg_size u32,
 * blcksz u32. It names the cluster a segment belongs to, so mixing clusters is detectable.
 */
export function readWalPageHeader(first: Buffer): WalPageHeader | undefined {
  if (first.length < 40) return undefined;
  const info = first.readUInt16LE(2);
  if ((info & XLP_LONG_HEADER) === 0) return undefined;
  const segmentSize = first.readUInt32LE(32);
  const blockSize = first.readUInt32LE(36);
  const powerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0;
  if (!powerOfTwo(segmentSize) || !powerOfTwo(blockSize)) return undefined;
  return {
    timeline: first.readUInt32LE(4),
    pageAddress: first.readBigUInt64LE(8),
    systemIdentifier: first.readBigUInt64LE(24).toString(),
    segmentSize,
    blockSize,
  };
}

export interface HistoryEntry {
  /** A timeline this one descends from. */
  timeline: number;
  /** Where the child branched off it. */
  switchLsn: bigint;
  reason: string;
}

/** Parses a `.history` file: `<parent tli>\t<switch LSN>\t<reason>` per ancestor, oldest first. */
export function parseHistory(text: string): HistoryEntry[] {
  const entries: HistoryEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const [tli, lsn, ...reason] = line.split(/\s+/);
    if (!tli || !lsn || !/^\d+$/.test(tli) || !isLsn(lsn)) continue;
    entries.push({ timeline: Number(tli), switchLsn: parseLsn(lsn), reason: reason.join(" ") });
  }
  return entries;
}
