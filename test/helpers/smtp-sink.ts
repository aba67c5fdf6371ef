// A minimal SMTP server for tests: speaks just enough (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
// QUIT) for nodemailer to deliver, keeps what it received, and can refuse every session.
import { createServer, type Server, type Socket } from "node:net";

export interface ReceivedMail {
  from: string;
  to: string[];
  /** The DATA section (headers and body) with dot-stuffing undone. */
  data: string;
}

export interface SmtpSink {
  port: number;
  messages: ReceivedMail[];
  /** Commands seen, in order (for assertions on the dialogue). */
  commands: string[];
  /** When set, every new session is greeted with 554 and closed. */
  refuse: boolean;
  /** Resolves once `count` messages have arrived (or rejects after `timeoutMs`). */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  close(): Promise<void>;
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const sockets = new Set<Socket>();
  const sink: SmtpSink = {
    port: 0,
    messages: [],
    commands: [],
    refuse: false,
    async waitFor(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (sink.messages.length < count) {
        if (Date.now() > deadline)
          throw new Error(`SMTP sink: ${sink.messages.length} of ${count} message(s) arrived`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return sink.messages;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    socket.setEncoding("latin1");
    const reply = (line: string) => socket.write(`${line}\r\n`);
    if (sink.refuse) {
      reply("554 5.3.2 test sink refuses service");
      socket.end();
      return;
    }
    let buffer = "";
    let inData = false;
    let envelope: { from: string; to: string[] } = { from: "", to: [] };
    let data: string[] = [];
    reply("220 sink.test ESMTP lifeboat test sink");
    socket.on("data", (chunk: string) => {
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf("\r\n")) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (inData) {
          if (line === ".") {
            inData = false;
            sink.messages.push({ ...envelope, data: data.join("\r\n") });
            envelope = { from: "", to: [] };
            data = [];
            reply("250 2.0.0 queued");
          } else {
            data.push(line.startsWith("..") ? line.slice(1) : line);
          }
          continue;
        }
        const verb = line.split(" ")[0]!.toUpperCase();
        sink.commands.push(verb);
        const argument = (pattern: RegExp) => pattern.exec(line)?.[1] ?? "";
        switch (verb) {
          case "EHLO":
            reply("250-sink.test greets you");
            reply("250-8BITMIME");
            reply("250 SMTPUTF8");
            break;
          case "HELO":
            reply("250 sink.test");
            break;
          case "MAIL":
            envelope = { from: argument(/^MAIL FROM:\s*<([^>]*)>/i), to: [] };
            reply("250 2.1.0 ok");
            break;
          case "RCPT":
            envelope.to.push(argument(/^RCPT TO:\s*<([^>]*)>/i));
            reply("250 2.1.5 ok");
            break;
          case "DATA":
            inData = true;
            reply("354 end data with <CR><LF>.<CR><LF>");
            break;
          case "RSET":
            envelope = { from: "", to: [] };
            reply("250 2.0.0 ok");
            break;
          case "NOOP":
            reply("250 2.0.0 ok");
            break;
          case "QUIT":
            reply("221 2.0.0 bye");
            socket.end();
            break;
          default:
            reply("502 5.5.2 command not implemented");
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  sink.port = (server.address() as { port: number }).port;
  return sink;
}
