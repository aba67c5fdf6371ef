#!/usr/bin/env node
import { main } from "./main.js";

// Exit explicitly once output is flushed: keep-alive sockets of storage clients must not keep a
// finished command alive, and a piped stdout must not be cut short.
main().then(
  (code) => process.stdout.write("", () => process.exit(code)),
  (error: unknown) => {
    process.stderr.write(`error[INTERNAL]: ${String(error)}\n`);
    process.exit(70);
  },
);
