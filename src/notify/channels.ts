import type { ChannelConfig } from "../config/monitoring-schema.js";
import { LifeboatError } from "../errors.js";
import type { Alert } from "./alerts.js";

const TIMEOUT_MS = 10_000;

export interface AlertBatch {
  host: string;
  time: string;
  alerts: Alert[];
}

/** Sends one batch to one channel; throws a LifeboatError the caller logs (never fatal). */
export async function send(channel: ChannelConfig, batch: AlertBatch): Promise<void> {
  switch (channel.type) {
    case "webhook":
      return post(channel.url, { tool: "lifeboat", ...batch }, channel.headers);
    case "slack":
      return post(channel.url, { text: renderText(batch, "slack") });
    case "email":
      return email(channel, batch);
  }
}

async function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<void> {
  let protocol: string | undefined;
  try {
    protocol = new URL(url).protocol;
  } catch {
    // reported below
  }
  if (protocol !== "http:" && protocol !== "https:") {
    // A missing scheme (`hooks.example.com/…` or `localhost:8080/…`) still parses as some URL.
    throw new LifeboatError(
      "NOTIFY_FAILED",
      `malformed webhook URL (${protocol ? `scheme "${protocol.slice(0, -1)}"` : "not a URL"}): expected http:// or https://`,
    );
  }
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    throw new LifeboatError(
      "NOTIFY_FAILED",
      `POST to ${redact(url)} failed: ${(error as Error).message}`,
      { cause: error },
    );
  }
  await response.body?.cancel();
  if (!response.ok)
    throw new LifeboatError("NOTIFY_FAILED", `POST to ${redact(url)} answered ${response.status}`);
}

async function email(
  channel: Extract<ChannelConfig, { type: "email" }>,
  batch: AlertBatch,
): Promise<void> {
  // Loaded on demand: every command can alert, few ever send e-mail.
  const { default: nodemailer } = await import("nodemailer");
  const transport = nodemailer.createTransport({
    host: channel.smtp.host,
    port: channel.smtp.port,
    secure: channel.smtp.secure,
    ...(channel.smtp.user
      ? { auth: { user: channel.smtp.user, pass: channel.smtp.password ?? "" } }
      : {}),
    connectionTimeout: TIMEOUT_MS,
    greetingTimeout: TIMEOUT_MS,
    socketTimeout: TIMEOUT_MS,
  });
  try {
    await transport.sendMail({
      from: channel.from,
      to: channel.to,
      subject: subjectOf(batch),
      text: renderText(batch, "plain"),
    });
  } catch (error) {
    throw new LifeboatError(
      "NOTIFY_FAILED",
      `e-mail via ${channel.smtp.host}:${channel.smtp.port} failed: ${(error as Error).message}`,
      { cause: error },
    );
  } finally {
    transport.close();
  }
}

export function subjectOf(batch: AlertBatch): string {
  const failing = batch.alerts.filter((a) => a.status !== "ok");
  if (failing.length === 0)
    return `[lifeboat] ${batch.host}: ${batch.alerts.map((a) => a.title).join(", ")}`;
  const word = failing.some((a) => a.status === "fail") ? "FAILED" : "WARNING";
  return `[lifeboat] ${word} on ${batch.host}: ${failing[0]!.title}${failing.length > 1 ? ` (+${failing.length - 1} more)` : ""}`;
}

/** Says what, where, since when, and the next step — for people reading on a phone at 3 a.m. */
export function renderText(batch: AlertBatch, style: "slack" | "plain"): string {
  const bold = (text: string) => (style === "slack" ? `*${text}*` : text);
  const lines = [subjectOf(batch), ""];
  for (const alert of batch.alerts) {
    const icon =
      alert.status === "fail"
        ? "FAIL"
        : alert.status === "warn"
          ? "WARN"
          : alert.recovered
            ? "RECOVERED"
            : "OK";
    lines.push(`${bold(`${icon}: ${alert.title}`)}${alert.subject ? ` — ${alert.subject}` : ""}`);
    lines.push(`  ${alert.message}`);
    if (alert.since) lines.push(`  since ${alert.since}`);
    if (alert.hint && alert.status !== "ok") lines.push(`  next step: ${alert.hint}`);
  }
  lines.push("", `host ${batch.host}, ${batch.time}`);
  return lines.join("\n");
}

/** Webhook URLs often carry their token in the path: never print it. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}/…`;
  } catch {
    return "(invalid URL)";
  }
}
