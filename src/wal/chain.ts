import {
  lsnSegment,
  parseWalName,
  segmentNumber,
  segmentStartLsn,
  type HistoryEntry,
} from "./layout.js";

/**
 * Timelines and WAL continuity, pure: which segments a recovery from a base backup reads, whether
 * the archive holds them all, and how far it can go. Mirrors what PostgreSQL does: for each
 * segment it tries the newest timeline on the target's history whose branch point is at or
 * before the segment, then older ones.
 */

export interface TimelineStep {
  timeline: number;
  /** First LSN that belongs to this timeline on the path (0 for the root). */
  begin: bigint;
  /** First LSN that no longer does (the child's switch point); undefined for the target. */
  end?: bigint;
}

/** The target timeline and its ancestors, newest first (PostgreSQL's expectedTLEs). */
export function timelinePath(target: number, history: readonly HistoryEntry[]): TimelineStep[] {
  const path: TimelineStep[] = [];
  const ancestors = [...history].sort((a, b) => a.timeline - b.timeline);
  let begin = ancestors.length > 0 ? ancestors[ancestors.length - 1]!.switchLsn : 0n;
  path.push({ timeline: target, begin });
  for (let i = ancestors.length - 1; i >= 0; i--) {
    const entry = ancestors[i]!;
    begin = i > 0 ? ancestors[i - 1]!.switchLsn : 0n;
    path.push({ timeline: entry.timeline, begin, end: entry.switchLsn });
  }
  return path;
}

/** Timelines on the path that may hold `segno`, in the order PostgreSQL tries them. */
export function timelinesForSegment(
  path: readonly TimelineStep[],
  segno: number,
  segmentSize: number,
): number[] {
  return path
    .filter(
      (step) =>
        lsnSegment(step.begin, segmentSize) <= segno &&
        (step.end === undefined || lsnSegment(step.end, segmentSize) >= segno),
    )
    .map((step) => step.timeline);
}

/** Segments present in an archive, by timeline, plus partial segments (stream mode). */
export interface SegmentSet {
  segments: Map<number, Set<number>>;
  partials: Map<number, Set<number>>;
}

export function segmentSet(names: Iterable<string>, segmentSize: number): SegmentSet {
  const set: SegmentSet = { segments: new Map(), partials: new Map() };
  for (const raw of names) {
    const name = parseWalName(raw);
    if (!name?.segment || (name.kind !== "segment" && name.kind !== "partial")) continue;
    const bucket = name.kind === "segment" ? set.segments : set.partials;
    let numbers = bucket.get(name.timeline);
    if (!numbers) bucket.set(name.timeline, (numbers = new Set()));
    numbers.add(segmentNumber(name.segment, segmentSize));
  }
  return set;
}

export interface ChainEnd {
  /** Last segment present without a gap from the start (start - 1 when the start is missing). */
  lastSegment: number;
  /** Timeline the last segment was found on. */
  lastTimeline?: number;
  /** A partial segment right after the chain (stream mode), usable by `restore pitr --latest`. */
  partial?: { segno: number; timeline: number };
  /** The first segment missing (the gap), if the chain stops before the newest segment present. */
  firstMissing: number;
}

/** Walks from `startSegno` along the path while segments are present. */
export function chainEnd(
  set: SegmentSet,
  path: readonly TimelineStep[],
  startSegno: number,
  segmentSize: number,
): ChainEnd {
  let segno = startSegno;
  let lastTimeline: number | undefined;
  for (;;) {
    const found = timelinesForSegment(path, segno, segmentSize).find((tli) =>
      set.segments.get(tli)?.has(segno),
    );
    if (found === undefined) break;
    lastTimeline = found;
    segno++;
  }
  const partialTli = timelinesForSegment(path, segno, segmentSize).find((tli) =>
    set.partials.get(tli)?.has(segno),
  );
  return {
    lastSegment: segno - 1,
    ...(lastTimeline === undefined ? {} : { lastTimeline }),
    ...(partialTli === undefined ? {} : { partial: { segno, timeline: partialTli } }),
    firstMissing: segno,
  };
}

export interface BaseBackupPosition {
  id: string;
  timeline: number;
  startLsn: bigint;
  stopLsn: bigint;
  /** When the backup became consistent (an upper bound: when pg_basebackup reported its end). */
  stopTime: string;
  /** The backup carries its own WAL (pg_basebackup -X fetch): consistent without the archive. */
  walIncluded?: boolean;
}

/**
 * The newest timeline a base backup can recover along: the highest timeline whose history
 * passes through the backup's timeline after the backup ended.
 */
export function targetTimelineFor(
  base: BaseBackupPosition,
  histories: ReadonlyMap<number, readonly HistoryEntry[]>,
): number {
  let best = base.timeline;
  for (const [timeline, history] of histories) {
    if (timeline <= best) continue;
    const branch = history.find((entry) => entry.timeline === base.timeline);
    if (branch && branch.switchLsn >= base.stopLsn) best = timeline;
  }
  return best;
}

export interface Reach {
  base: BaseBackupPosition;
  targetTimeline: number;
  path: TimelineStep[];
  /** The backup's own WAL (start to stop) is all there: it can be restored at all. */
  consistent: boolean;
  end: ChainEnd;
  /** End of the recoverable WAL: the end of the last contiguous segment. */
  endLsn: bigint;
}

/** How far recovery from `base` can go with the archived WAL in `set`. */
export function reachOf(
  base: BaseBackupPosition,
  set: SegmentSet,
  histories: ReadonlyMap<number, readonly HistoryEntry[]>,
  segmentSize: number,
  target = targetTimelineFor(base, histories),
): Reach {
  const path = timelinePath(target, histories.get(target) ?? []);
  const stop = lsnSegment(base.stopLsn, segmentSize);
  const start = base.walIncluded ? stop + 1 : lsnSegment(base.startLsn, segmentSize);
  const end = chainEnd(set, path, start, segmentSize);
  return {
    base,
    targetTimeline: target,
    path,
    consistent: end.lastSegment >= stop,
    end,
    endLsn: segmentStartLsn(end.lastSegment + 1, segmentSize),
  };
}
