#!/usr/bin/env node
import { main } from "./main.js";

// A reader that closes the pipe early (`lifeboat cat … | head`) is not an error worth a stack trace.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE")
    process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
  throw error;
});

// lifeboat supports the Node versions in package.json "engines"; the AWS SDK's multi-line notice
// about its own future Node support would break the one-line error contract on stderr.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

// Exit explicitly once output is flushed: keep-alive sockets of storage clients must not keep a
// finished command alive, and a piped stdout must not be cut short.
main().then(
  (code) => process.stdout.write("", () => process.exit(code)),
  (error: unknown) => {
    process.stderr.write(`error[INTERNAL]: ${String(error)}\n`);
    process.exit(70);
  },
);
