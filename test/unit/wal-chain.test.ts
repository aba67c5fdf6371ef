import { describe, expect, it } from "vitest";
import {
  chainEnd,
  reachOf,
  segmentSet,
  targetTimelineFor,
  timelinePath,
} from "../../src/wal/chain.js";
import {
  formatLsn,
  lsnSegment,
  nextSegmentName,
  parseHistory,
  parseLsn,
  parseWalKey,
  parseWalName,
  readWalPageHeader,
  segmentName,
  segmentNumber,
  walDataKey,
  walRecordKey,
} from "../../src/wal/layout.js";
import { chooseBaseBackup, parseTarget, recoveryTargetSettings } from "../../src/wal/target.js";

const MiB = 1 << 20;
const SEG16 = 16 * MiB;

describe("WAL names and positions", () => {
  it("classifies the files PostgreSQL archives", () => {
    expect(parseWalName("000000010000000000000003")).toMatchObject({
      kind: "segment",
      timeline: 1,
    });
    expect(parseWalName("0000000A00000001000000FF.partial")).toMatchObject({
      kind: "partial",
      timeline: 10,
      segment: "0000000A00000001000000FF",
    });
    expect(parseWalName("00000002.history")).toMatchObject({ kind: "history", timeline: 2 });
    expect(parseWalName("000000010000000000000002.00000028.backup")).toMatchObject({
      kind: "backup",
    });
    for (const bad of [
      "RECOVERYXLOG",
      "00000001000000000000000g",
      "../000000010000000000000003",
      "",
    ]) {
      expect(parseWalName(bad)).toBeUndefined();
    }
  });

  it("maps segment names to positions for 16 MiB and 1 MiB segments", () => {
    expect(segmentNumber("0000000100000001000000FF", SEG16)).toBe(256 + 255);
    expect(segmentName(1, 511, SEG16)).toBe("0000000100000001000000FF");
    expect(nextSegmentName("0000000100000000000000FF", SEG16)).toBe("000000010000000100000000");
    expect(nextSegmentName("000000010000000000000FFF", MiB)).toBe("000000010000000100000000");
    expect(segmentName(3, segmentNumber("000000010000000000000FFF", MiB), MiB)).toBe(
      "000000030000000000000FFF",
    );
  });

  it("parses and formats LSNs", () => {
    expect(parseLsn("16/B374D848")).toBe(0x16b374d848n);
    expect(formatLsn(0x16b374d848n)).toBe("16/B374D848");
    expect(lsnSegment(parseLsn("0/3000060"), SEG16)).toBe(3);
    expect(() => parseLsn("nope")).toThrow();
  });

  it("builds record and content-addressed data keys under the timeline", () => {
    const name = parseWalName("000000020000000000000003")!;
    expect(walRecordKey(name)).toBe("wal/00000002/000000020000000000000003.json");
    const data = walDataKey(name, "ab".repeat(32), ".zst.age");
    expect(data).toBe("wal/00000002/000000020000000000000003-abababababababab.zst.age");
    expect(parseWalKey(data)).toMatchObject({ role: "data", name: { name: name.name } });
    expect(parseWalKey(walRecordKey(name))).toMatchObject({ role: "record" });
    expect(parseWalKey("wal/00000001/000000020000000000000003.json")).toBeUndefined();
    expect(parseWalKey("wal/restore-points/x.json")).toBeUndefined();
  });

  it("reads the long page header that names the cluster", () => {
    const page = Buffer.alloc(64);
    page.writeUInt16LE(0xd110, 0);
    page.writeUInt16LE(0x0002, 2);
    page.writeUInt32LE(1, 4);
    page.writeBigUInt64LE(0x3000000n, 8);
    page.writeBigUInt64LE(7312345678901234567n, 24);
    page.writeUInt32LE(SEG16, 32);
    page.writeUInt32LE(8192, 36);
    expect(readWalPageHeader(page)).toEqual({
      timeline: 1,
      pageAddress: 0x3000000n,
      systemIdentifier: "7312345678901234567",
      segmentSize: SEG16,
      blockSize: 8192,
    });
    expect(readWalPageHeader(Buffer.alloc(64))).toBeUndefined();
  });

  it("parses timeline history files", () => {
    const history = parseHistory(
      "1\t0/5000000\tno recovery target specified\n\n2\t0/9000A28\tbefore 2026-11-26 10:00:00+00\n",
    );
    expect(history).toEqual([
      { timeline: 1, switchLsn: 0x5000000n, reason: "no recovery target specified" },
      { timeline: 2, switchLsn: 0x9000a28n, reason: "before 2026-11-26 10:00:00+00" },
    ]);
  });
});

describe("WAL chains across timelines", () => {
  const history3 = parseHistory("1\t0/5000000\tx\n2\t0/9000A28\ty\n");
  const histories = new Map([
    [2, parseHistory("1\t0/5000000\tx\n")],
    [3, history3],
  ]);

  it("lists the target's ancestors newest first, like PostgreSQL's expectedTLEs", () => {
    expect(timelinePath(3, history3)).toEqual([
      { timeline: 3, begin: 0x9000a28n },
      { timeline: 2, begin: 0x5000000n, end: 0x9000a28n },
      { timeline: 1, begin: 0n, end: 0x5000000n },
    ]);
  });

  it("follows the switch: old timeline before it, new timeline from the switch segment on", () => {
    const names = [3, 4, 5].map((n) => segmentName(1, n, SEG16));
    names.push(...[5, 6, 7, 8, 9].map((n) => segmentName(2, n, SEG16)));
    names.push(...[9, 10].map((n) => segmentName(3, n, SEG16)));
    const end = chainEnd(segmentSet(names, SEG16), timelinePath(3, history3), 3, SEG16);
    expect(end).toMatchObject({ lastSegment: 10, lastTimeline: 3, firstMissing: 11 });
  });

  it("stops at a gap and offers a partial segment right after the chain", () => {
    const names = [
      segmentName(1, 3, SEG16),
      segmentName(1, 4, SEG16),
      `${segmentName(1, 5, SEG16)}.partial`,
      segmentName(1, 7, SEG16),
    ];
    const end = chainEnd(segmentSet(names, SEG16), timelinePath(1, []), 3, SEG16);
    expect(end).toEqual({
      lastSegment: 4,
      lastTimeline: 1,
      partial: { segno: 5, timeline: 1 },
      firstMissing: 5,
    });
  });

  it("picks the newest timeline that branched after the base backup ended", () => {
    const base = {
      id: "b",
      timeline: 1,
      startLsn: 0x3000028n,
      stopLsn: 0x3000100n,
      stopTime: "2026-11-26T00:00:00Z",
    };
    expect(targetTimelineFor(base, histories)).toBe(3);
    const late = { ...base, startLsn: 0x6000028n, stopLsn: 0x6000100n };
    // Timeline 1 beyond 0/5000000 is abandoned: no later timeline passes through it.
    expect(targetTimelineFor(late, histories)).toBe(1);
  });

  it("says whether a base backup can become consistent and how far it reaches", () => {
    const base = { id: "b", timeline: 1, startLsn: 0x3000028n, stopLsn: 0x4000100n, stopTime: "t" };
    const names = [3, 4, 5, 6].map((n) => segmentName(1, n, SEG16));
    const reach = reachOf(base, segmentSet(names, SEG16), new Map(), SEG16);
    expect(reach.consistent).toBe(true);
    expect(formatLsn(reach.endLsn)).toBe("0/7000000");
    const missingStop = reachOf(base, segmentSet([names[0]!], SEG16), new Map(), SEG16);
    expect(missingStop.consistent).toBe(false);
    const carriesWal = reachOf(
      { ...base, walIncluded: true },
      segmentSet([], SEG16),
      new Map(),
      SEG16,
    );
    expect(carriesWal.consistent).toBe(true);
    expect(formatLsn(carriesWal.endLsn)).toBe("0/5000000");
  });
});

describe("restore targets", () => {
  const bases = [
    {
      id: "old",
      timeline: 1,
      startLsn: 0x2000028n,
      stopLsn: 0x2000100n,
      stopTime: "2026-11-26T01:00:00.000Z",
    },
    {
      id: "new",
      timeline: 1,
      startLsn: 0x8000028n,
      stopLsn: 0x8000100n,
      stopTime: "2026-11-26T03:00:00.000Z",
    },
  ];

  it("chooses the newest base backup consistent before the target", () => {
    expect(
      chooseBaseBackup(bases, { kind: "time", time: "2026-11-26T02:00:00.000Z" }).base.id,
    ).toBe("old");
    expect(
      chooseBaseBackup(bases, { kind: "time", time: "2026-11-26T03:00:00.000Z" }).base.id,
    ).toBe("new");
    expect(chooseBaseBackup(bases, { kind: "lsn", lsn: "0/8000000" }).base.id).toBe("old");
    expect(chooseBaseBackup(bases, { kind: "latest" }).base.id).toBe("new");
    expect(chooseBaseBackup(bases, { kind: "name", name: "x", lsn: "0/9000000" }).base.id).toBe(
      "new",
    );
    expect(chooseBaseBackup(bases, { kind: "latest" }, "old").base.id).toBe("old");
    expect(() =>
      chooseBaseBackup(bases, { kind: "time", time: "2026-11-26T00:30:00.000Z" }),
    ).toThrow(/earliest recoverable point is 0\/2000100/);
  });

  it("parses exactly one target and refuses zone-less times", () => {
    expect(parseTarget({ time: "2026-11-26T14:03:00+01:00" })).toEqual({
      kind: "time",
      time: "2026-11-26T13:03:00.000Z",
    });
    expect(parseTarget({ lsn: "0/3000060" })).toEqual({ kind: "lsn", lsn: "0/3000060" });
    expect(parseTarget({ latest: true })).toEqual({ kind: "latest" });
    expect(() => parseTarget({ time: "2026-11-26 14:03" })).toThrow(/zone/);
    expect(() => parseTarget({ latest: true, lsn: "0/1" })).toThrow(/exactly one/);
    expect(() => parseTarget({})).toThrow(/exactly one/);
  });

  it("writes recovery settings PostgreSQL accepts", () => {
    expect(
      recoveryTargetSettings({ kind: "time", time: "2026-11-26T13:03:00.123Z" }, false),
    ).toEqual({
      recovery_target_time: "2026-11-26 13:03:00.123+00",
      recovery_target_inclusive: "on",
      recovery_target_action: "promote",
    });
    expect(recoveryTargetSettings({ kind: "name", name: "pre-upgrade" }, true)).toEqual({
      recovery_target_name: "pre-upgrade",
      recovery_target_action: "pause",
    });
    expect(recoveryTargetSettings({ kind: "latest" }, false)).toEqual({});
  });
});
