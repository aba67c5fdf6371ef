#!/usr/bin/env node
/**
 * archive_command fast path (printed by `lifeboat setup wal`):
 *
 *   node dist/cli/wal-push.js %p --spool <dir> --max-segments <n> --config <file>
 *
 * PostgreSQL runs archive_command once per segment, one at a time, so its cost bounds the WAL
 * rate the server can sustain. This entry loads only node built-ins and the spool module (no
 * configuration parser, no storage SDK): it copies the segment into the spool durably, makes
 * sure the uploader runs, and exits. `lifeboat wal push` does the same with the full CLI.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { LifeboatError, formatErrorLine, toLifeboatError } from "../errors.js";
import { UPLOADER_ARGS, enqueue, ensureUploader } from "../wal/spool.js";

async function run(): Promise<number> {
  const { values, positionals } = parseArgs({
    options: {
      spool: { type: "string" },
      "max-segments": { type: "string", default: "64" },
      config: { type: "string" },
    },
    allowPositionals: true,
  });
  const file = positionals[0];
  if (!file || !values.spool || positionals.length !== 1) {
    throw new LifeboatError(
      "USAGE",
      "usage: wal-push.js <path> --spool <dir> [--max-segments n] [--config file]",
    );
  }
  const spool = path.resolve(values.spool);
  try {
    await enqueue(spool, file, { maxSegments: Number(values["max-segments"]) });
  } finally {
    // Also after a failure: a full spool with no uploader running would never drain.
    if (values.config) {
      const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), "bin.js");
      await ensureUploader(spool, [bin, "--config", path.resolve(values.config), ...UPLOADER_ARGS]);
    }
  }
  return 0;
}

run().then(
  (code) => process.exit(code),
  (error: unknown) => {
    const failure = toLifeboatError(error);
    process.stderr.write(`lifeboat wal push: ${formatErrorLine(failure)}\n`);
    process.exit(failure.exitStatus);
  },
);
