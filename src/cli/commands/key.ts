import type { Command } from "commander";
import { readFile } from "node:fs/promises";
import { LifeboatError } from "../../errors.js";
import { generateIdentity, parseIdentityFile, writeIdentityFile } from "../../stream/age/index.js";
import { action } from "../context.js";

export function registerKeyCommands(program: Command): void {
  const key = program.command("key").description("manage age encryption keys");

  key
    .command("generate")
    .description("create an identity file (private key, mode 0600) and print its public recipient")
    .requiredOption("-o, --out <file>", "where to write the identity; never overwritten")
    .action(
      action(async (context, options: { out: string }) => {
        const { identity, recipient } = generateIdentity();
        await writeIdentityFile(options.out, identity);
        context.out.result({ identityFile: options.out, recipient }, () => recipient);
        if (!context.out.json) {
          context.out.note(
            `identity written to ${options.out} (mode 0600). Put the recipient above in encryption.recipients;` +
              " keep the identity file off backup hosts, and keep a copy somewhere safe — without it backups cannot be read.",
          );
        }
      }),
    );

  key
    .command("recipient")
    .description("print the public recipient(s) of an identity file")
    .argument("<identity-file>")
    .action(
      action(async (context, file: string) => {
        let text: string;
        try {
          text = await readFile(file, "utf8");
        } catch (error) {
          throw new LifeboatError("KEY_NOT_FOUND", `cannot read identity file ${file}`, {
            cause: error,
          });
        }
        const recipients = parseIdentityFile(text, file).map((identity) => identity.recipient);
        context.out.result({ recipients }, () => recipients);
      }),
    );
}
