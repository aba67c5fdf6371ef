// The CLI's surface through the real binary: every command's --help, usage errors (exit 2, one
// `error[USAGE]` line, JSON with --json) and colour only where it is wanted.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { buildProgram, main } from "../../src/cli/main.js";
import {
  cliEnv,
  describeRun,
  ensureBuilt,
  parseJson,
  runCli,
  type CliResult,
} from "../helpers/cli.js";

const ANSI = "\u001b[";
let dir = "";
let env: Record<string, string> = {};

const lifeboat = (args: string[], extra: Record<string, string> = {}) =>
  runCli(args, { env: { ...env, ...extra }, cwd: dir });

/** Every command path, e.g. [], ["backup"], ["backup", "files"], … */
function commandPaths(command: Command, prefix: string[] = []): string[][] {
  return [
    prefix,
    ...command.commands.flatMap((child) => commandPaths(child, [...prefix, child.name()])),
  ];
}

function expectUsageError(result: CliResult, mention: string): void {
  const why = describeRun(result);
  expect(result.code, why).toBe(2);
  expect(result.stderr.trimEnd().split("\n"), why).toHaveLength(1);
  expect(result.stderr, why).toMatch(/^error\[USAGE\]: .+ — run the command with --help/);
  expect(result.stderr, why).toContain(mention);
}

beforeAll(async () => {
  await ensureBuilt();
  dir = await mkdtemp(path.join(tmpdir(), "lifeboat-cli-surface-"));
  env = cliEnv(dir);
  await writeFile(
    path.join(dir, "lifeboat.yaml"),
    `repositories:\n  local: { type: local, path: ${dir}/repo }\nencryption: { disabled: true }\n`,
  );
  await writeFile(path.join(dir, "note.txt"), "hello\n");
  for (const args of [["repo", "init"], ["backup", "files", "note.txt"], ["verify"]]) {
    const result = await lifeboat(args);
    expect(result.code, describeRun(result)).toBe(0);
  }
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("help", async () => {
  const paths = commandPaths(await buildProgram());

  it("walks every command (the program has the expected groups)", () => {
    const names = paths.map((p) => p.join(" "));
    for (const expected of ["backup files", "restore files", "cat", "backups list", "verify"])
      expect(names).toContain(expected);
    expect(paths.length).toBeGreaterThan(15);
  });

  it("every command's --help exits 0 with its usage on stdout (in-process main())", async () => {
    // main() is exactly what bin.js runs; in-process because ~40 CLI start-ups cost ~20 s of CPU.
    const written: string[] = [];
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
      written.push(String(chunk));
      return true;
    });
    const outcomes: { path: string; code: number; output: string }[] = [];
    try {
      for (const commandPath of paths) {
        written.length = 0;
        const code = await main(["node", "lifeboat", ...commandPath, "--help"]);
        outcomes.push({ path: commandPath.join(" "), code, output: written.join("") });
      }
    } finally {
      spy.mockRestore();
    }
    for (const { path: commandPath, code, output } of outcomes) {
      expect(code, commandPath).toBe(0);
      expect(output, commandPath).toContain(`Usage: ${`lifeboat ${commandPath}`.trim()} `);
    }
  });

  it("--help through the real binary exits 0, usage on stdout, nothing on stderr", async () => {
    for (const commandPath of [[], ["repo"], ["backup", "files"], ["verify"]]) {
      const result = await lifeboat([...commandPath, "--help"]);
      const why = describeRun(result);
      expect(result.code, why).toBe(0);
      expect(result.stdout, why).toContain(`Usage: ${["lifeboat", ...commandPath].join(" ")} `);
      expect(result.stderr, why).toBe("");
      expect(result.stdout, why).not.toContain(ANSI);
    }
  });
});

describe("usage errors exit 2", () => {
  it("unknown command", async () => {
    expectUsageError(await lifeboat(["frobnicate"]), "unknown command 'frobnicate'");
  });

  it("unknown option, also as JSON", async () => {
    expectUsageError(await lifeboat(["backups", "list", "--frobnicate"]), "'--frobnicate'");
    const json = await lifeboat(["--json", "backups", "list", "--frobnicate"]);
    expectUsageError(json, "'--frobnicate'");
    expect(parseJson(json)).toMatchObject({ ok: false, error: { code: "USAGE" } });
  });

  it("missing required option and missing argument", async () => {
    expectUsageError(await lifeboat(["restore", "files", "latest"]), "--to <dir>");
    expectUsageError(await lifeboat(["cat", "latest"]), "object");
  });

  it("a command group without its subcommand prints help and exits 2", async () => {
    const result = await lifeboat(["backup"]);
    expect(result.code, describeRun(result)).toBe(2);
    expect(result.stderr).toContain("Usage: lifeboat backup");
    expect(result.stdout).toBe("");
  });
});

describe("colour", () => {
  const colourful = [["backups", "list"], ["verify"], ["cat", "latest", "nope"]];

  it("none when stdout/stderr are not terminals, or NO_COLOR / --no-color is given", async () => {
    for (const args of colourful) {
      for (const [extra, flags] of [
        [{}, []],
        [{ NO_COLOR: "1", FORCE_COLOR: "1" }, []],
        [{ FORCE_COLOR: "1" }, ["--no-color"]],
      ] as const) {
        const result = await lifeboat([...flags, ...args], extra);
        expect(result.stdout + result.stderr, describeRun(result)).not.toContain(ANSI);
        expect(result.stdout + result.stderr, describeRun(result)).not.toBe("");
      }
    }
  });

  it("FORCE_COLOR turns it on (so the checks above can see colour when there is some)", async () => {
    const list = await lifeboat(["backups", "list"], { FORCE_COLOR: "1" });
    expect(list.stdout, describeRun(list)).toContain(ANSI);
    const error = await lifeboat(["cat", "latest", "nope"], { FORCE_COLOR: "1" });
    expect(error.stderr, describeRun(error)).toContain(ANSI);
  });
});
