import { chown, mkdir, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import path from "node:path";
import { toLifeboatError } from "../errors.js";
import type { Repository } from "../repository/repository.js";
import type { AgeIdentity } from "../stream/age/index.js";
import { fetchWalFile, prefetchAfter, segmentSizeOf, takeFromCache } from "./fetch.js";
import { parseWalName } from "./layout.js";

/**
 * The fetch broker `restore pitr` runs while PostgreSQL recovers. restore_command is the tiny
 * client (fetch-client.js), which asks over a Unix socket; the broker — this lifeboat process,
 * holding the configuration, storage credentials and the identity — fetches, verifies and writes
 * the file, and prefetches the next segments with warm connections. The server's OS user never
 * needs to read the identity, and recovery pays no CLI start-up per segment.
 *
 * Protocol: one JSON line each way. Request `{"name": "<%f>", "dest": "<absolute %p>"}`; answer
 * `{"status": "ok" | "missing" | "error", "message"?}`.
 */

export interface BrokerOptions {
  repositories: Repository[];
  identities: readonly AgeIdentity[];
  /** Directory for the socket; made and handed to `owner` (the server's OS user). */
  socketDir: string;
  /** Destinations must lie inside this directory (the data directory being recovered). */
  dataDir: string;
  prefetch: number;
  allowPartial: boolean;
  owner?: { uid: number; gid: number };
  log?: (message: string) => void;
}

export interface BrokerStats {
  requests: number;
  served: number;
  fromCache: number;
  missing: number;
  errors: { name: string; code: string; message: string }[];
  lastServed?: string;
  partialServed?: string;
}

export interface FetchBroker {
  socketPath: string;
  stats: BrokerStats;
  close(): Promise<void>;
}

export async function startFetchBroker(options: BrokerOptions): Promise<FetchBroker> {
  await mkdir(options.socketDir, { recursive: true, mode: 0o700 });
  if (options.owner) await chown(options.socketDir, options.owner.uid, options.owner.gid);
  const socketPath = path.join(options.socketDir, "fetch.sock");
  await rm(socketPath, { force: true });
  const cacheDir = path.join(options.dataDir, "pg_wal", ".lifeboat-prefetch");
  const stats: BrokerStats = { requests: 0, served: 0, fromCache: 0, missing: 0, errors: [] };
  let prefetching: Promise<unknown> | undefined;
  let segmentSize: number | undefined;

  const handle = async (request: { name?: unknown; dest?: unknown }) => {
    stats.requests++;
    const name = typeof request.name === "string" ? parseWalName(request.name) : undefined;
    const dest = typeof request.dest === "string" ? path.resolve(request.dest) : "";
    if (!name || !dest.startsWith(`${path.resolve(options.dataDir)}${path.sep}`)) {
      return { status: "error", message: `refused request ${JSON.stringify(request)}` };
    }
    try {
      let cached = false;
      if (name.kind === "segment") cached = await takeFromCache(cacheDir, name.name, dest);
      if (!cached) {
        const outcome = await fetchWalFile(options.repositories, name.name, dest, {
          identities: options.identities,
          allowPartial: options.allowPartial,
          ...(options.log ? { log: options.log } : {}),
        });
        if (outcome.status === "missing") {
          stats.missing++;
          return { status: "missing" };
        }
        if (outcome.partial) stats.partialServed = name.name;
      } else {
        stats.fromCache++;
      }
      if (options.owner) await chown(dest, options.owner.uid, options.owner.gid);
      stats.served++;
      stats.lastServed = name.name;
      if (name.kind === "segment" && options.prefetch > 0 && !prefetching) {
        segmentSize ??= await segmentSizeOf(dest);
        prefetching = prefetchAfter(options.repositories, name.name, cacheDir, {
          identities: options.identities,
          count: options.prefetch,
          concurrency: Math.min(4, options.prefetch),
          segmentSize,
        })
          .catch(() => undefined)
          .finally(() => (prefetching = undefined));
      }
      return { status: "ok" };
    } catch (error) {
      const failure = toLifeboatError(error);
      stats.errors.push({ name: name.name, code: failure.code, message: failure.message });
      options.log?.(`restore of ${name.name} failed: ${failure.message}`);
      return {
        status: "error",
        message: `error[${failure.code}]: ${failure.message} — ${failure.hint}`,
      };
    }
  };

  const server: Server = createServer((socket: Socket) => {
    let buffer = "";
    socket.setEncoding("utf8");
    socket.on("error", () => undefined);
    socket.on("data", (chunk: string) => {
      buffer += chunk;
      const end = buffer.indexOf("\n");
      if (end < 0) return;
      let request: { name?: unknown; dest?: unknown } = {};
      try {
        request = JSON.parse(buffer.slice(0, end)) as typeof request;
      } catch {
        // answered as a refused request below
      }
      void handle(request).then((answer) => socket.end(`${JSON.stringify(answer)}\n`));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  if (options.owner) await chown(socketPath, options.owner.uid, options.owner.gid);
  return {
    socketPath,
    stats,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await prefetching;
      await rm(cacheDir, { recursive: true, force: true });
      await rm(socketPath, { force: true });
    },
  };
}
