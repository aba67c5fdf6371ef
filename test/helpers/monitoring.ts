// Helpers for the monitoring tests (check, alerts, metrics): cheap db backups on any day,
// taking a backup's objects away and putting them back, an HTTP receiver for webhooks, and a
// small Prometheus text-format parser.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import type { LifeboatConfig } from "../../src/config/schema.js";
import { encodingFromConfig } from "../../src/engine/files.js";
import { manifestCopyKey, manifestKey, dataPrefix } from "../../src/repository/format.js";
import type { Repository } from "../../src/repository/repository.js";
import { runBackup } from "../../src/repository/writer.js";

/**
 * A db backup of `source` taken (and finished) at `at`, with a random "dump" of `bytes` bytes,
 * written to every repository given. Returns the backup id.
 */
export async function fabricateDbBackup(
  config: LifeboatConfig,
  repositories: Repository[],
  at: Date,
  bytes: number,
  source = "app",
): Promise<string> {
  const committed = await runBackup(
    repositories,
    {
      kind: "db",
      source,
      encoding: encodingFromConfig(config),
      operation: `backup db ${source}`,
      now: () => at,
    },
    async (session) => {
      await session.addObject("dump.pgcustom", Readable.from([randomBytes(bytes)]));
      return { snapshotTime: at.toISOString(), tables: [] };
    },
  );
  if (committed.failures.length > 0)
    throw new Error(`fabricated backup failed in ${committed.failures[0]!.repository}`);
  return committed.id;
}

export interface SavedObject {
  key: string;
  data: Buffer;
}

/** Removes a backup (manifest, its copy, data) from one repository; returns what to put back. */
export async function takeAway(repository: Repository, backupId: string): Promise<SavedObject[]> {
  const keys: string[] = [];
  for (const key of [manifestKey(backupId), manifestCopyKey(backupId)])
    if (await repository.storage.stat(key)) keys.push(key);
  for await (const info of repository.storage.list(dataPrefix(backupId))) keys.push(info.key);
  const saved: SavedObject[] = [];
  for (const key of keys) {
    saved.push({ key, data: await buffer(await repository.storage.get(key)) });
    await repository.storage.delete(key);
  }
  return saved;
}

export async function putBack(repository: Repository, saved: SavedObject[]): Promise<void> {
  // Data before manifests, as a real backup writes them.
  const ordered = [...saved].sort(
    (a, b) => Number(a.key.startsWith("manifests/")) - Number(b.key.startsWith("manifests/")),
  );
  for (const { key, data } of ordered)
    await repository.storage.put(key, { open: () => Readable.from([data]), size: data.length });
}

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Receiver {
  url: string;
  requests: ReceivedRequest[];
  /** Status answered to every request (200 unless a test makes the receiver fail). */
  status: number;
  /** Resolves once `count` requests arrived in total. */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  close(): Promise<void>;
}

/** An HTTP receiver on 127.0.0.1 and an ephemeral port that records every request. */
export async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = {
    url: "",
    requests: [],
    status: 200,
    async waitFor(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (receiver.requests.length < count) {
        if (Date.now() > deadline)
          throw new Error(`receiver: ${receiver.requests.length} of ${count} request(s) arrived`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return receiver.requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      receiver.requests.push({
        method: request.method ?? "",
        url: request.url ?? "",
        headers: request.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      });
      response.writeHead(receiver.status, { "content-type": "text/plain" }).end("thanks\n");
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  receiver.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return receiver;
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  help: Map<string, string>;
  types: Map<string, string>;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_PAIR = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/;

/**
 * Parses the Prometheus text exposition format (version 0.0.4) strictly: every line must be a
 * HELP, TYPE, comment, blank or sample line; every sample's metric must have a declared TYPE
 * (histogram and summary suffixes included); values must be numbers (or NaN/±Inf).
 */
export function parsePrometheus(text: string): Exposition {
  const help = new Map<string, string>();
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  lines.forEach((line, index) => {
    const where = `line ${index + 1}: ${JSON.stringify(line)}`;
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!meta) return; // an ordinary comment
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name in ${where}`);
      if (kind === "HELP") {
        if (help.has(name)) throw new Error(`second HELP for ${name} in ${where}`);
        help.set(name, rest);
      } else {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(rest))
          throw new Error(`bad TYPE in ${where}`);
        if (types.has(name)) throw new Error(`second TYPE for ${name} in ${where}`);
        if (samples.some((s) => s.name === name))
          throw new Error(`TYPE after samples of ${name} in ${where}`);
        types.set(name, rest);
      }
      return;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (!sample) throw new Error(`not a sample line: ${where}`);
    const [, name, labelText = "", valueText] = sample as unknown as [
      string,
      string,
      string | undefined,
      string,
    ];
    const labels: Record<string, string> = {};
    let rest = labelText;
    while (rest.length > 0) {
      const pair = LABEL_PAIR.exec(rest);
      if (!pair) throw new Error(`bad labels in ${where}`);
      const [whole, label, raw] = pair as unknown as [string, string, string];
      if (label in labels) throw new Error(`label ${label} twice in ${where}`);
      labels[label] = raw.replace(/\\(["\\n])/g, (_m, c: string) => (c === "n" ? "\n" : c));
      rest = rest.slice(whole.length);
    }
    const value =
      valueText === "+Inf"
        ? Infinity
        : valueText === "-Inf"
          ? -Infinity
          : valueText === "NaN"
            ? NaN
            : Number(valueText);
    if (valueText !== "NaN" && Number.isNaN(value)) throw new Error(`bad value in ${where}`);
    const family = [name, name.replace(/_(bucket|sum|count|total|created)$/, "")].find((n) =>
      types.has(n),
    );
    if (!family) throw new Error(`sample of ${name} without a TYPE line (${where})`);
    samples.push({ name, labels, value });
  });
  return { help, types, samples };
}

/** The value of the one sample of `name` whose labels include `labels`. */
export function sampleValue(
  exposition: Exposition,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const matching = exposition.samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (matching.length > 1)
    throw new Error(`${matching.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return matching[0]?.value;
}
