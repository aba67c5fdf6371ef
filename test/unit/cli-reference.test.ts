import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram } from "../../src/cli/main.js";
import { CLI_DOC_PATH, renderCliReference } from "../../src/cli/reference.js";
import { ERROR_TABLE } from "../../src/errors.js";

function commandNames(command: Command, prefix = "lifeboat"): string[] {
  return command.commands.flatMap((child) => {
    const name = `${prefix} ${child.name()}`;
    return [name, ...commandNames(child, name)];
  });
}

describe("generated CLI reference", async () => {
  const reference = await renderCliReference();

  it("docs/cli.md matches the command definitions and error table (run `npm run generate`)", () => {
    expect(readFileSync(CLI_DOC_PATH, "utf8")).toBe(reference);
  });

  it("has a section for every command and subcommand, with its usage", async () => {
    const program = await buildProgram();
    const names = commandNames(program);
    expect(names).toContain("lifeboat backup files");
    for (const name of names) expect(reference).toContain(`\n### ${name}\n`);
    expect(reference).toContain("\nlifeboat restore files [options] <id>\n");
    expect(reference).toMatch(/\| `--to <dir>` +\| directory to restore into \(required\) +\|/);
    expect(reference).toMatch(/\| `--source <name>` +\| .+ \| `"files"` +\|/);
  });

  it("lists every error code with its exit status and hint", () => {
    for (const [code, spec] of Object.entries(ERROR_TABLE)) {
      const row = reference.split("\n").find((line) => line.startsWith(`| \`${code}\` `));
      expect(row, code).toBeDefined();
      expect(row!.split("|").map((cell) => cell.trim())[2]).toBe(String(spec.exit));
      expect(row).toContain(spec.hint.replace(/</g, "&lt;").replace(/>/g, "&gt;").slice(0, 20));
    }
  });

  it("documents the JSON error shape", () => {
    expect(reference).toContain("## JSON output");
    expect(reference).toContain('{ "ok": false, "error": { "code": ');
  });
});
