#!/usr/bin/env node
/**
 * restore_command while `lifeboat restore pitr` runs:
 *
 *   node dist/wal/fetch-client.js <socket> %f %p
 *
 * Asks the fetch broker (broker.ts) for one file and maps its answer onto what PostgreSQL
 * understands: 0 restored, 1 not archived (recovery ends or tries another timeline), and 255
 * for anything else — corruption, an unreachable repository, a vanished broker — which makes
 * PostgreSQL abort recovery instead of mistaking the failure for the end of the archive.
 * Node built-ins only, so each call costs little more than node's start-up.
 */
import { connect } from "node:net";
import path from "node:path";

const NOT_ARCHIVED = 1;
const ABORT_RECOVERY = 255;

function ask(socketPath: string, name: string, dest: string): Promise<number> {
  return new Promise((resolve) => {
    let answer = "";
    const socket = connect(socketPath, () => {
      socket.write(`${JSON.stringify({ name, dest: path.resolve(dest) })}\n`);
    });
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (answer += chunk));
    socket.on("error", (error) => {
      process.stderr.write(
        `lifeboat wal fetch: ${name}: the restore broker is not reachable (${error.message})\n`,
      );
      resolve(ABORT_RECOVERY);
    });
    socket.on("end", () => {
      let parsed: { status?: string; message?: string } = {};
      try {
        parsed = JSON.parse(answer.trim()) as typeof parsed;
      } catch {
        // an empty or cut answer is an error like any other
      }
      if (parsed.status === "ok") resolve(0);
      else if (parsed.status === "missing") resolve(NOT_ARCHIVED);
      else {
        process.stderr.write(
          `lifeboat wal fetch: ${name}: ${parsed.message ?? "no answer from the restore broker"}\n`,
        );
        resolve(ABORT_RECOVERY);
      }
    });
  });
}

const [socketPath, name, dest] = process.argv.slice(2);
if (!socketPath || !name || !dest) {
  process.stderr.write("usage: fetch-client.js <socket> <%f> <%p>\n");
  process.exit(ABORT_RECOVERY);
}
ask(socketPath, name, dest).then((code) => process.exit(code));
