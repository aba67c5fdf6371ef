import { z } from "zod";

export const DURATION_PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y)$/;

/** A duration field of the configuration schema ("90s", "4h", "30d"...). */
export const duration = (what: string) =>
  z
    .string()
    .regex(DURATION_PATTERN, { message: "expected a duration such as 90s, 15m, 4h, 30d, 7y" })
    .describe(`${what} (a duration: a number followed by ms, s, m, h, d, w or y)`);

const UNIT_SECONDS: Record<string, number> = {
  ms: 0.001,
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
  w: 604_800,
  y: 31_557_600,
};

/** Seconds in a duration string that already passed the schema. */
export function durationSeconds(text: string): number {
  const match = DURATION_PATTERN.exec(text.trim());
  if (!match) throw new Error(`not a duration: ${text}`);
  return Number(match[1]) * (UNIT_SECONDS[match[2] ?? "s"] ?? 1);
}
