import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import path from "node:path";
import { durationSeconds, type LifeboatConfig } from "../config/schema.js";
import { toLifeboatError } from "../errors.js";
import { hostName } from "../version.js";
import { send } from "./channels.js";

export type AlertStatus = "fail" | "warn" | "ok";

/** Something worth telling a person: a failing check or run, a recovery, or a success summary. */
export interface Alert {
  /** Identity for de-duplication and recovery tracking, e.g. `check:backups.daily:local/app`. */
  key: string;
  source: string;
  status: AlertStatus;
  title: string;
  subject?: string;
  message: string;
  hint?: string;
  /** When this problem started (first seen failing). */
  since?: string;
  recovered?: boolean;
}

interface StateEntry {
  status: AlertStatus;
  since: string;
  lastSentAt?: string;
  lastSentStatus?: AlertStatus;
}

type State = Record<string, StateEntry>;

export interface NotifyResult {
  sent: Alert[];
  suppressed: number;
  channelErrors: { channel: string; message: string }[];
}

/**
 * Decides which events become alerts (new problems, repeats after the de-duplication window,
 * recoveries, optional successes), sends them as one batch per channel, and remembers state.
 * A failing channel is reported back, never thrown: alerting must not fail a backup.
 */
export async function notify(
  config: LifeboatConfig,
  events: Alert[],
  now = new Date(),
): Promise<NotifyResult> {
  const settings = config.notifications;
  const file = stateFile(config);
  const state = await loadState(file);
  const windowMs = durationSeconds(settings.dedupeWindow) * 1000;
  const outgoing: Alert[] = [];
  /** State before this run of every key that goes out, restored when no channel delivers. */
  const before = new Map<string, StateEntry | undefined>();
  let suppressed = 0;

  for (const event of events) {
    const previous = state[event.key];
    if (event.status === "ok") {
      const wasBad = previous && previous.status !== "ok";
      if (wasBad && settings.notifyOn.recovery) {
        before.set(event.key, previous);
        outgoing.push({
          ...event,
          recovered: true,
          since: previous.since,
          message: `${event.message} (was ${previous.status} since ${previous.since})`,
        });
      } else if (settings.notifyOn.success && event.source !== "check") {
        outgoing.push(event);
      }
      delete state[event.key];
      continue;
    }
    const since = previous && previous.status !== "ok" ? previous.since : now.toISOString();
    const entry: StateEntry = { ...previous, status: event.status, since };
    state[event.key] = entry;
    const wanted = event.status === "fail" ? settings.notifyOn.failure : settings.notifyOn.warning;
    const repeat =
      entry.lastSentStatus === event.status &&
      entry.lastSentAt &&
      now.getTime() - Date.parse(entry.lastSentAt) < windowMs;
    if (!wanted || repeat) {
      suppressed++;
      continue;
    }
    before.set(event.key, previous);
    entry.lastSentAt = now.toISOString();
    entry.lastSentStatus = event.status;
    outgoing.push({ ...event, since });
  }

  const channelErrors: NotifyResult["channelErrors"] = [];
  if (outgoing.length > 0) {
    const batch = { host: hostName(), time: now.toISOString(), alerts: outgoing };
    await Promise.all(
      settings.channels.map((channel) =>
        send(channel, batch).catch((error: unknown) => {
          channelErrors.push({ channel: channel.type, message: toLifeboatError(error).message });
        }),
      ),
    );
    // Nothing was delivered: do not remember these alerts as sent (or a recovery as told), so
    // the next run tries again instead of staying quiet for the whole de-duplication window.
    if (settings.channels.length > 0 && channelErrors.length === settings.channels.length) {
      for (const [key, entry] of before) {
        if (entry) state[key] = entry;
        else if (state[key]) {
          delete state[key].lastSentAt;
          delete state[key].lastSentStatus;
        }
      }
    }
  }
  await saveState(file, state).catch((error: unknown) =>
    channelErrors.push({ channel: "state", message: (error as Error).message }),
  );
  return { sent: settings.channels.length > 0 ? outgoing : [], suppressed, channelErrors };
}

export function stateFile(config: LifeboatConfig): string {
  if (config.notifications.stateFile) return config.notifications.stateFile;
  const base = process.env.XDG_STATE_HOME || path.join(homedir(), ".local", "state");
  return path.join(base, "lifeboat", "alerts.json");
}

async function loadState(file: string): Promise<State> {
  try {
    const parsed = JSON.parse(await readFile(file, "utf8")) as unknown;
    return parsed && typeof parsed === "object" ? (parsed as State) : {};
  } catch {
    return {}; // missing or damaged state only risks one repeated alert
  }
}

async function saveState(file: string, state: State): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, JSON.stringify(state, null, 2), { mode: 0o600 });
  await rename(temporary, file);
}
