import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CheckResult } from "../../src/checks/types.js";
import { parseConfigText } from "../../src/config/load.js";
import type { LifeboatConfig } from "../../src/config/schema.js";
import { runCheck } from "../../src/engine/check.js";
import { initRepositories } from "../../src/engine/repo-admin.js";
import { openRepositories } from "../../src/engine/repositories.js";
import type { Alert } from "../../src/notify/alerts.js";
import { generateIdentity } from "../../src/stream/age/keys.js";
import { hostName } from "../../src/version.js";
import { lifeboat, type Run } from "../helpers/lifeboat.js";
import {
  fabricateDbBackup,
  startReceiver,
  takeAway,
  type ReceivedRequest,
  type Receiver,
} from "../helpers/monitoring.js";
import { startSmtpSink, type ReceivedMail, type SmtpSink } from "../helpers/smtp-sink.js";

/**
 * Alerts from `lifeboat check` (and failed runs) to a webhook receiver, a Slack-compatible
 * receiver (both a local HTTP server) and an SMTP sink on loopback: content, de-duplication,
 * recovery, failing channels, and channel configuration mistakes.
 */

const HOUR = 3_600_000;
const WEBHOOK_SECRET = "hook-s3cr3t-token";
const SLACK_SECRET = "slack-s3cr3t-B0RK";
const BEARER = "bearer-s3cr3t";
const T0 = new Date();
const at = (hours: number) => new Date(T0.getTime() + hours * HOUR);

let dir: string;
let receiver: Receiver;
let sink: SmtpSink;
let config: LifeboatConfig;
let configFile: string;
let env: Record<string, string>;

function configText(channels: string, stateFile = path.join(dir, "alerts.json")): string {
  return `
repositories:
  main: { type: local, path: ${path.join(dir, "repo")} }
encryption: { recipients: [${generateIdentity().recipient}] }
databases:
  app: { port: 1, database: app }
notifications:
  channels:
${channels}
  dedupeWindow: 6h
  stateFile: ${stateFile}
`;
}

const goodChannels = () => `    - type: webhook
      url: "\${HOOK_URL}"
      headers: { authorization: "Bearer \${HOOK_TOKEN}" }
    - { type: slack, url: "${receiver.url}/services/T000/${SLACK_SECRET}" }
    - type: email
      smtp: { host: 127.0.0.1, port: ${sink.port} }
      from: lifeboat@example.test
      to: [oncall@example.test, backup@example.test]`;

const webhooks = () => receiver.requests.filter((r) => r.url.startsWith("/hook/"));
const slacks = () => receiver.requests.filter((r) => r.url.startsWith("/services/"));
const alertsOf = (request: ReceivedRequest) =>
  (JSON.parse(request.body) as { alerts: Alert[] }).alerts;
const textOf = (request: ReceivedRequest) => (JSON.parse(request.body) as { text: string }).text;

/** Headers unfolded and the quoted-printable body decoded: what a mail client shows. */
function readMail(mail: ReceivedMail): { subject: string; body: string } {
  const [head = "", ...rest] = mail.data.split("\r\n\r\n");
  const headers = head.replace(/\r\n(?=[ \t])/g, "");
  const subject = /^Subject: (.*)$/im.exec(headers)?.[1] ?? "";
  let body = rest.join("\r\n\r\n");
  if (/^Content-Transfer-Encoding: quoted-printable$/im.test(headers))
    body = Buffer.from(
      body
        .replace(/=\r\n/g, "")
        .replace(/=([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))),
      "latin1",
    ).toString("utf8");
  return { subject, body: body.replace(/\r\n/g, "\n") };
}

const check = (hours: number) =>
  runCheck(config, { only: ["backups"], now: at(hours), notify: true });
const cli = (
  args: string[],
  file = configFile,
  extraEnv: Record<string, string> = {},
): Promise<Run> => lifeboat(dir, ["--config", file, ...args], { ...env, ...extraEnv });

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "lifeboat-alerts-"));
  [receiver, sink] = await Promise.all([startReceiver(), startSmtpSink()]);
  env = { HOOK_URL: `${receiver.url}/hook/${WEBHOOK_SECRET}`, HOOK_TOKEN: BEARER };
  configFile = path.join(dir, "lifeboat.yaml");
  await writeFile(configFile, configText(goodChannels()));
  config = parseConfigText(configText(goodChannels()), configFile, env);
  await initRepositories(config, []);
});

afterAll(async () => {
  await Promise.all([receiver?.close(), sink?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("alerts from check", () => {
  let since: string;
  let backupId: string;

  it("a failing check reaches the webhook, Slack and e-mail with its details", async () => {
    // An empty repository: "no backup at all" is the one failing check of the backups group.
    const run = await check(0);
    expect(run.status).toBe("fail");
    expect(run.notifications?.channelErrors).toEqual([]);
    expect(run.notifications?.sent.map((a) => a.key)).toEqual(["check:backups.fresh:main/app"]);
    await receiver.waitFor(2);
    await sink.waitFor(1);

    const [hook] = webhooks();
    expect(hook!.method).toBe("POST");
    expect(hook!.url).toBe(`/hook/${WEBHOOK_SECRET}`);
    expect(hook!.headers["content-type"]).toBe("application/json");
    expect(hook!.headers.authorization).toBe(`Bearer ${BEARER}`);
    const payload = JSON.parse(hook!.body) as { tool: string; host: string; alerts: Alert[] };
    expect(payload.tool).toBe("lifeboat");
    expect(payload.host).toBe(hostName());
    since = at(0).toISOString();
    expect(payload.alerts).toEqual([
      {
        key: "check:backups.fresh:main/app",
        source: "check",
        status: "fail",
        title: "newest backup within the schedule",
        subject: "main/app",
        message: "no backup at all",
        hint: "run `lifeboat backup db`",
        since,
      },
    ]);

    const [slack] = slacks();
    expect(Object.keys(JSON.parse(slack!.body) as object)).toEqual(["text"]);
    const text = textOf(slack!);
    expect(text.split("\n").slice(0, 6)).toEqual([
      `[lifeboat] FAILED on ${hostName()}: newest backup within the schedule`,
      "",
      "*FAIL: newest backup within the schedule* — main/app",
      "  no backup at all",
      `  since ${since}`,
      "  next step: run `lifeboat backup db`",
    ]);

    const [mail] = sink.messages;
    expect(mail!.from).toBe("lifeboat@example.test");
    expect(mail!.to).toEqual(["oncall@example.test", "backup@example.test"]);
    expect(sink.commands).toEqual(expect.arrayContaining(["EHLO", "MAIL", "RCPT", "DATA"]));
    const { subject, body } = readMail(mail!);
    expect(subject).toBe(`[lifeboat] FAILED on ${hostName()}: newest backup within the schedule`);
    expect(body).toContain(
      "FAIL: newest backup within the schedule — main/app\n  no backup at all",
    );
    expect(body).toContain("next step: run `lifeboat backup db`");
  });

  it("an identical failing check within the window sends nothing; after it, a reminder", async () => {
    const again = await check(1);
    expect(again.status).toBe("fail");
    expect(again.notifications?.sent).toEqual([]);
    expect(again.notifications?.suppressed).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(receiver.requests).toHaveLength(2);
    expect(sink.messages).toHaveLength(1);

    const reminder = await check(7);
    expect(reminder.notifications?.sent.map((a) => a.since)).toEqual([since]);
    await receiver.waitFor(4);
    await sink.waitFor(2);
    expect(alertsOf(webhooks()[1]!)[0]).toMatchObject({ status: "fail", since });
  });

  it("a recovery sends a RECOVERED message, once", async () => {
    const [repository] = await openRepositories(config, []);
    backupId = await fabricateDbBackup(config, [repository!], at(7.5), 1000);
    const recovered = await check(8);
    expect(recovered.status).toBe("pass");
    await receiver.waitFor(6);
    await sink.waitFor(3);
    expect(alertsOf(webhooks()[2]!)).toEqual([
      {
        key: "check:backups.fresh:main/app",
        source: "check",
        status: "ok",
        title: "newest backup within the schedule",
        subject: "main/app",
        message: `newest backup ${backupId} is 30m old (limit 30.0h) (was fail since ${since})`,
        recovered: true,
        since,
      },
    ]);
    expect(textOf(slacks()[2]!)).toContain(
      "*RECOVERED: newest backup within the schedule* — main/app",
    );
    const { subject, body } = readMail(sink.messages[2]!);
    expect(subject).toBe(`[lifeboat] ${hostName()}: newest backup within the schedule`);
    expect(body).toContain("RECOVERED: newest backup within the schedule");
    expect(body).not.toContain("next step");

    const quiet = await check(9);
    expect(quiet.notifications?.sent).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(receiver.requests).toHaveLength(6);
    expect(sink.messages).toHaveLength(3);
  });

  it("failing channels are reported, do not fail the run, keep secrets out, and are retried", async () => {
    const [repository] = await openRepositories(config, []);
    await takeAway(repository!, backupId);
    receiver.status = 500;
    sink.refuse = true;
    try {
      const run = await check(10);
      expect(run.status).toBe("fail");
      expect(run.results.map((r) => `${r.id} ${r.status}`)).toContain("backups.fresh fail");
      const errors = run.notifications?.channelErrors ?? [];
      expect(errors.map((e) => e.channel).sort()).toEqual(["email", "slack", "webhook"]);
      expect(errors.find((e) => e.channel === "webhook")!.message).toBe(
        `POST to ${receiver.url}/… answered 500`,
      );
      expect(errors.find((e) => e.channel === "slack")!.message).toBe(
        `POST to ${receiver.url}/… answered 500`,
      );
      expect(errors.find((e) => e.channel === "email")!.message).toMatch(
        new RegExp(`^e-mail via 127\\.0\\.0\\.1:${sink.port} failed: .*554`),
      );

      // The CLI: the check's own verdict decides the exit status; channel failures are warnings.
      const human = await cli(["check", "backups"]);
      expect(human.code, human.stderr).toBe(2);
      expect(human.stderr).toContain(
        `warning: alert via webhook failed: POST to ${receiver.url}/… answered 500`,
      );
      expect(human.stderr).toMatch(/warning: alert via email failed: e-mail via 127\.0\.0\.1/);
      const json = await cli(["--json", "check", "backups"]);
      expect(json.code).toBe(2);
      const report = JSON.parse(json.stdout) as {
        results: CheckResult[];
        notifications: { channelErrors: unknown[] };
      };
      expect(report.notifications.channelErrors).toHaveLength(3);
      for (const output of [human.stdout, human.stderr, json.stdout, json.stderr]) {
        for (const secret of [WEBHOOK_SECRET, SLACK_SECRET, BEARER])
          expect(output).not.toContain(secret);
      }
    } finally {
      receiver.status = 200;
      sink.refuse = false;
    }
    // Nothing was delivered, so nothing counts as sent: the next run (inside the window) retries.
    const before = { hooks: webhooks().length, mails: sink.messages.length };
    const retry = await check(10.1);
    expect(retry.notifications?.sent.map((a) => a.key)).toEqual(["check:backups.fresh:main/app"]);
    await sink.waitFor(before.mails + 1);
    expect(webhooks().length).toBe(before.hooks + 1);
    expect(alertsOf(webhooks().at(-1)!)[0]).toMatchObject({
      status: "fail",
      since: at(10).toISOString(),
    });
  });

  it("a failed command run alerts too", async () => {
    const count = webhooks().length;
    const run = await cli(["verify", "--no-decrypt"]);
    expect(run.code).not.toBe(0);
    // Sent before the command exits.
    expect(webhooks()).toHaveLength(count + 1);
    expect(alertsOf(webhooks().at(-1)!)).toEqual([
      expect.objectContaining({
        key: "run:verify",
        source: "verify",
        status: "fail",
        title: "lifeboat verify failed",
        message: expect.stringMatching(/^BACKUP_NOT_FOUND: /),
      }),
    ]);
  });
});

describe("channel configuration mistakes", () => {
  it("clear errors per channel; the working channels alert and every result is reported", async () => {
    const file = path.join(dir, "bad-channels.yaml");
    await writeFile(
      file,
      configText(
        `    - { type: webhook, url: "not a url/${WEBHOOK_SECRET}" }
    - { type: slack, url: "${receiver.url}/services/T000/${SLACK_SECRET}" }
    - { type: email, from: lifeboat@example.test, to: [oncall@example.test] }
    - { type: webhook, url: "\${UNSET_HOOK_URL}" }
    - { type: webhook, url: "localhost:8080/hook/${WEBHOOK_SECRET}" }`,
        path.join(dir, "bad-alerts.json"),
      ),
    );
    const slacksBefore = slacks().length;
    const run = await cli(["--json", "check", "backups"], file);
    expect(run.code, run.stderr).toBe(2);
    const report = JSON.parse(run.stdout) as { results: CheckResult[] };
    const problems = report.results.filter((r) => r.id === "config.notifications");
    expect(problems.map((r) => [r.subject, r.status, r.message])).toEqual([
      [
        "notifications.channels[0]",
        "fail",
        "notifications.channels[0].url: Invalid URL; this alert channel is skipped",
      ],
      [
        "notifications.channels[2]",
        "fail",
        "notifications.channels[2].smtp: required (expected object); this alert channel is skipped",
      ],
      [
        "notifications.channels[3]",
        "fail",
        `${file}: notifications.channels[3].url: environment variable UNSET_HOOK_URL is not set; this alert channel is skipped`,
      ],
    ]);
    expect(report.results.filter((r) => r.id.startsWith("backups.")).length).toBeGreaterThan(0);
    // The slack channel still works; the scheme-less URL fails at send time, clearly.
    expect(slacks()).toHaveLength(slacksBefore + 1);
    expect(textOf(slacks().at(-1)!)).toContain(
      "*FAIL: alert channels usable* — notifications.channels[0]",
    );
    expect(run.stderr).toContain(
      'warning: alert via webhook failed: malformed webhook URL (scheme "localhost"): expected http:// or https://',
    );
    expect(run.stdout + run.stderr).not.toContain(WEBHOOK_SECRET);

    // Other commands keep rejecting the configuration, naming the field.
    const validate = await cli(["config", "validate"], file);
    expect(validate.code).toBe(2);
    expect(validate.stderr).toMatch(
      /^error\[CONFIG_[A-Z_]+\]: .*notifications\.channels\[\d\]\.url/,
    );
  });
});
