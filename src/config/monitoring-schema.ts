import { z } from "zod";
import { duration } from "./duration.js";

/** `lifeboat check` thresholds and notification channels (split out to keep schema.ts readable). */

export const monitoringSchema = z
  .strictObject({
    backupDays: z
      .number()
      .int()
      .min(1)
      .max(366)
      .default(7)
      .describe(
        "A backup must exist for each of this many recent days (UTC), per repository and database.",
      ),
    backupInterval: duration("How often backups are scheduled").default("24h"),
    grace: duration("Allowed lateness of the newest backup beyond backupInterval").default("6h"),
    sizeDropTolerance: z
      .number()
      .min(0)
      .max(1)
      .default(0.5)
      .describe(
        "Fail when a backup is smaller than the median of the previous ones by more than this share.",
      ),
    sizeGrowthTolerance: z
      .number()
      .min(0)
      .default(2)
      .describe(
        "Warn when a backup is larger than the median by more than this share (2 = three times).",
      ),
    sizeHistory: z
      .number()
      .int()
      .min(2)
      .max(100)
      .default(7)
      .describe("How many previous backups form the median."),
    restoreTestMaxAge: duration("A passing restore test must be at most this old").default("35d"),
  })
  .describe("Thresholds of `lifeboat check` (the backup validation checklist).");

const webhookChannel = z.strictObject({
  type: z.literal("webhook"),
  url: z.url().describe("Receives a JSON POST per alert."),
  headers: z
    .record(z.string(), z.string())
    .default({})
    .describe("Extra headers, e.g. an authorization token via ${ENV}."),
});

const slackChannel = z.strictObject({
  type: z.literal("slack"),
  url: z.url().describe("Slack-compatible incoming webhook URL; write `${ENV_VAR}`."),
});

const emailChannel = z.strictObject({
  type: z.literal("email"),
  smtp: z
    .strictObject({
      host: z.string().min(1).describe("SMTP server."),
      port: z.number().int().min(1).max(65535).default(587).describe("SMTP port."),
      secure: z
        .boolean()
        .default(false)
        .describe("TLS from the start (port 465); otherwise STARTTLS when offered."),
      user: z.string().optional().describe("SMTP user."),
      password: z.string().optional().describe("SMTP password; write `${ENV_VAR}`."),
    })
    .describe("SMTP connection."),
  from: z.string().min(3).describe("Sender address."),
  to: z.array(z.string().min(3)).min(1).describe("Recipients."),
});

export const channelSchema = z.discriminatedUnion("type", [
  webhookChannel,
  slackChannel,
  emailChannel,
]);
export type ChannelConfig = z.output<typeof channelSchema>;

export const notificationsSchema = z
  .strictObject({
    channels: z
      .array(channelSchema)
      .default([])
      .describe("Where alerts go: webhook, slack, email."),
    notifyOn: z
      .strictObject({
        failure: z.boolean().default(true).describe("Alert on failures."),
        warning: z.boolean().default(true).describe("Alert on warnings from `check`."),
        recovery: z
          .boolean()
          .default(true)
          .describe("Tell when something that failed works again."),
        success: z.boolean().default(false).describe("Send a summary on every success too."),
      })
      .prefault({})
      .describe("Which events notify."),
    dedupeWindow: duration("An identical alert is not repeated within this window").default("6h"),
    stateFile: z
      .string()
      .optional()
      .describe(
        "Where alert state (since when, last sent) is kept; default $XDG_STATE_HOME/lifeboat/alerts.json.",
      ),
  })
  .describe("Alerts for failed checks and runs.");
