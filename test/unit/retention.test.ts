import { describe, expect, it } from "vitest";
import { isoWeek, planRetention, type RetentionCandidate } from "../../src/repository/retention.js";

const now = new Date("2026-11-26T12:00:00Z");
const daily = (days: number, kind = "db", source = "app"): RetentionCandidate[] =>
  Array.from({ length: days }, (_, i) => ({
    id: `d${String(i).padStart(3, "0")}`,
    kind,
    source,
    time: new Date(now.getTime() - i * 86_400_000 - 10 * 3_600_000),
  }));

describe("retention plans", () => {
  it("keeps 30 days of dailies and removes the rest", () => {
    const plan = planRetention(daily(45), { keepDays: 30 }, now);
    expect(plan.keep.map((d) => d.id)).toEqual(daily(30).map((c) => c.id));
    expect(plan.remove).toHaveLength(15);
    expect(plan.keep[0]!.reasons).toContain("newest backup");
  });

  it("never removes the newest backup, even when everything is older than the window", () => {
    const old = daily(10).map((c) => ({
      ...c,
      time: new Date(c.time.getTime() - 400 * 86_400_000),
    }));
    const plan = planRetention(old, { keepDays: 30 }, now);
    expect(plan.keep.map((d) => d.id)).toEqual(["d000"]);
  });

  it("never removes the newest verified backup", () => {
    const candidates = daily(40).map((c) => ({ ...c, verified: c.id === "d035" }));
    const plan = planRetention(candidates, { keepDays: 7 }, now);
    const kept = plan.keep.find((d) => d.id === "d035");
    expect(kept?.reasons).toEqual(["newest verified backup"]);
    expect(plan.remove.map((d) => d.id)).not.toContain("d035");
  });

  it("keep-last counts backups, not days", () => {
    const plan = planRetention(daily(10), { keepDays: 0, keepLast: 3 }, now);
    expect(plan.keep.map((d) => d.id)).toEqual(["d000", "d001", "d002"]);
  });

  it("grandfather-father-son keeps the newest of each day, week, month and year", () => {
    const plan = planRetention(
      daily(400),
      { keepDays: 0, daily: 7, weekly: 4, monthly: 12, yearly: 3 },
      now,
    );
    const kept = new Set(plan.keep.map((d) => d.id));
    for (let i = 0; i < 7; i++) expect(kept.has(`d${String(i).padStart(3, "0")}`)).toBe(true);
    const monthly = plan.keep.filter((d) => d.reasons.some((r) => r.startsWith("monthly")));
    expect(monthly).toHaveLength(12);
    expect(new Set(monthly.map((d) => d.time.slice(0, 7))).size).toBe(12);
    const yearly = plan.keep.filter((d) => d.reasons.some((r) => r.startsWith("yearly")));
    expect(yearly.map((d) => d.time.slice(0, 4))).toEqual(["2026", "2025"]);
    expect(plan.keep.length + plan.remove.length).toBe(400);
    expect(plan.keep.length).toBeLessThan(7 + 4 + 12 + 3 + 1);
  });

  it("applies per kind and source: file backups never crowd out database backups", () => {
    const candidates = [
      ...daily(5, "db", "app"),
      ...daily(50, "files", "secrets").map((c) => ({ ...c, id: `f${c.id}` })),
    ];
    const plan = planRetention(candidates, { keepDays: 0, keepLast: 2 }, now);
    expect(plan.keep.filter((d) => d.kind === "db").map((d) => d.id)).toEqual(["d000", "d001"]);
    expect(plan.keep.filter((d) => d.kind === "files").map((d) => d.id)).toEqual([
      "fd000",
      "fd001",
    ]);
  });

  it("computes ISO weeks", () => {
    expect(isoWeek(new Date("2026-01-01T00:00:00Z"))).toBe("2026-W01");
    expect(isoWeek(new Date("2027-01-01T00:00:00Z"))).toBe("2026-W53");
    expect(isoWeek(new Date("2024-12-30T00:00:00Z"))).toBe("2025-W01");
  });
});
