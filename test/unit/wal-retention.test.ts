import { describe, expect, it } from "vitest";
import {
  chainEnd,
  segmentSet,
  timelinePath,
  type BaseBackupPosition,
} from "../../src/wal/chain.js";
import { segmentName, segmentStartLsn } from "../../src/wal/layout.js";
import { planWalRetention, type WalFileFacts } from "../../src/wal/retention.js";

const SEG = 16 << 20;
const NOW = new Date("2026-11-26T12:00:00Z");
const DAY = 86_400_000;
const KEEP_7D = 7 * 86_400;

/** One segment per hour going back `days`, oldest first, on timeline 1. */
function hourlySegments(days: number, timeline = 1): WalFileFacts[] {
  const count = days * 24;
  return Array.from({ length: count }, (_, i) => {
    const name = segmentName(timeline, 100 + i, SEG);
    const archivedAt = new Date(NOW.getTime() - (count - i) * 3600_000);
    return file(name, archivedAt);
  });
}

function file(name: string, archivedAt: Date): WalFileFacts {
  return {
    name,
    recordKey: `wal/${name.slice(0, 8)}/${name}.json`,
    archivedAt,
    dataKeys: [
      {
        key: `wal/${name.slice(0, 8)}/${name}-0123456789abcdef.zst.age`,
        size: 1000,
        modified: archivedAt,
        current: true,
      },
    ],
  };
}

function base(id: string, segno: number): BaseBackupPosition {
  return {
    id,
    timeline: 1,
    startLsn: segmentStartLsn(segno, SEG) + 0x28n,
    stopLsn: segmentStartLsn(segno, SEG) + 0x200n,
    stopTime: "2026-11-01T00:00:00Z",
  };
}

function keptNames(files: WalFileFacts[], plan: ReturnType<typeof planWalRetention>): string[] {
  const deleted = new Set(
    plan.deletions.filter((d) => d.keys.some((k) => k.endsWith(".json"))).map((d) => d.name),
  );
  return files.map((f) => f.name).filter((n) => !deleted.has(n));
}

/** The property prune must never break: from every retained base backup, WAL runs unbroken to the newest segment. */
function assertChainsIntact(
  files: WalFileFacts[],
  plan: ReturnType<typeof planWalRetention>,
  bases: BaseBackupPosition[],
) {
  const kept = keptNames(files, plan);
  const set = segmentSet(kept, SEG);
  const newest = Math.max(...[...(set.segments.get(1) ?? [])]);
  for (const b of bases) {
    const end = chainEnd(set, timelinePath(1, []), Number(b.startLsn / BigInt(SEG)), SEG);
    expect(end.lastSegment, `chain from ${b.id}`).toBe(newest);
  }
}

describe("planWalRetention", () => {
  it("keeps everything from the oldest retained base backup on, even outside the window", () => {
    const files = hourlySegments(30);
    const bases = [base("b-20d", 100 + 10 * 24), base("b-3d", 100 + 27 * 24)];
    const plan = planWalRetention({
      now: NOW,
      keepSeconds: KEEP_7D,
      segmentSize: SEG,
      retainedBases: bases,
      files,
    });
    expect(plan.anchor).toBe("b-20d");
    expect(plan.deletions).toHaveLength(10 * 24);
    expect(plan.deletions.every((d) => d.reason.startsWith("older than the window"))).toBe(true);
    assertChainsIntact(files, plan, bases);
  });

  it("keeps the window even when it starts before the oldest base backup", () => {
    const files = hourlySegments(10);
    const bases = [base("b-1d", 100 + 9 * 24)];
    const plan = planWalRetention({
      now: NOW,
      keepSeconds: KEEP_7D,
      segmentSize: SEG,
      retainedBases: bases,
      files,
    });
    // 3 days before the window are deletable; the 7-day window stays although no backup needs it.
    expect(plan.deletions).toHaveLength(3 * 24);
    const oldestKept = keptNames(files, plan)[0]!;
    expect(files.findIndex((f) => f.name === oldestKept)).toBe(3 * 24);
    assertChainsIntact(files, plan, bases);
  });

  it("deletes nothing when no base backup is retained", () => {
    const files = hourlySegments(30);
    const plan = planWalRetention({
      now: NOW,
      keepSeconds: KEEP_7D,
      segmentSize: SEG,
      retainedBases: [],
      files,
    });
    expect(plan.deletions).toEqual([]);
    expect(plan.notes[0]).toMatch(/no retained base backup/);
  });

  it("never deletes history files, nor WAL of later timelines after the anchor", () => {
    const old = new Date(NOW.getTime() - 60 * DAY);
    const files = [
      file("00000002.history", old),
      file(segmentName(1, 100, SEG), old),
      file(segmentName(1, 200, SEG), old),
      file(segmentName(2, 200, SEG), old),
      file(segmentName(2, 201, SEG), old),
    ];
    const plan = planWalRetention({
      now: NOW,
      keepSeconds: KEEP_7D,
      segmentSize: SEG,
      retainedBases: [base("b", 150)],
      files,
    });
    expect(plan.deletions.map((d) => d.name)).toEqual([segmentName(1, 100, SEG)]);
  });

  it("deletes the record before the data, and counts the bytes", () => {
    const files = hourlySegments(10);
    const plan = planWalRetention({
      now: NOW,
      keepSeconds: KEEP_7D,
      segmentSize: SEG,
      retainedBases: [base("b", 100 + 9 * 24)],
      files,
    });
    const first = plan.deletions[0]!;
    expect(first.keys[0]).toMatch(/\.json$/);
    expect(first.keys[1]).toMatch(/\.zst\.age$/);
    expect(plan.bytes).toBe(plan.deletions.length * 1000);
  });

  it("removes uncommitted uploads and replaced data objects only after a day", () => {
    const fresh = new Date(NOW.getTime() - 3600_000);
    const stale = new Date(NOW.getTime() - 2 * DAY);
    const committed = file(segmentName(1, 500, SEG), fresh);
    committed.dataKeys.push({
      key: "wal/00000001/x-old.zst.age",
      size: 7,
      modified: stale,
      current: false,
    });
    const unrecorded: WalFileFacts = {
      name: segmentName(1, 501, SEG),
      dataKeys: [{ key: "wal/00000001/y.zst.age", size: 5, modified: stale, current: false }],
    };
    const inFlight: WalFileFacts = {
      name: segmentName(1, 502, SEG),
      dataKeys: [{ key: "wal/00000001/z.zst.age", size: 5, modified: fresh, current: false }],
    };
    const plan = planWalRetention({
      now: NOW,
      keepSeconds: KEEP_7D,
      segmentSize: SEG,
      retainedBases: [base("b", 400)],
      files: [committed, unrecorded, inFlight],
    });
    expect(plan.deletions.map((d) => [d.name, d.keys])).toEqual([
      [committed.name, ["wal/00000001/x-old.zst.age"]],
      [unrecorded.name, ["wal/00000001/y.zst.age"]],
    ]);
  });

  it("protects every data object of a record it cannot read", () => {
    const stale = new Date(NOW.getTime() - 2 * DAY);
    const unknown = file(segmentName(1, 500, SEG), stale);
    unknown.dataKeys = [
      { key: "a", size: 1, modified: stale, current: false },
      { key: "b", size: 1, modified: stale, current: false },
    ];
    const plan = planWalRetention({
      now: NOW,
      keepSeconds: KEEP_7D,
      segmentSize: SEG,
      retainedBases: [base("b", 400)],
      files: [unknown],
    });
    expect(plan.deletions).toEqual([]);
  });

  it("drops partial segments superseded by their complete segment", () => {
    const old = new Date(NOW.getTime() - 2 * 3600_000);
    const name = segmentName(1, 500, SEG);
    const files = [
      file(name, old),
      file(`${name}.partial`, old),
      file(`${segmentName(1, 501, SEG)}.partial`, old),
    ];
    const plan = planWalRetention({
      now: NOW,
      keepSeconds: KEEP_7D,
      segmentSize: SEG,
      retainedBases: [base("b", 400)],
      files,
    });
    expect(plan.deletions.map((d) => d.name)).toEqual([`${name}.partial`]);
  });
});
