import type { Command } from "commander";
import { LifeboatError } from "../../errors.js";
import { EXAMPLE_CONFIG } from "../../config/example.js";
import { renderJsonSchema } from "../../config/generate.js";
import { loadConfig, type ConfigProblem } from "../../config/load.js";
import { action } from "../context.js";

export function registerConfigCommands(program: Command): void {
  const config = program.command("config").description("check and explain the configuration file");

  config
    .command("validate")
    .description("check the configuration file and list every problem found")
    .action(
      action(async (context) => {
        try {
          const { config: parsed, file } = await loadConfig(context.globals.config);
          context.out.result(
            {
              ok: true,
              file,
              repositories: Object.keys(parsed.repositories),
              databases: Object.keys(parsed.databases),
            },
            () =>
              `${file} is valid: ${Object.keys(parsed.repositories).length} repository(ies), ${Object.keys(parsed.databases).length} database(s)`,
          );
        } catch (error) {
          const problems =
            error instanceof LifeboatError
              ? (error.data?.problems as ConfigProblem[] | undefined)
              : undefined;
          if (problems && problems.length > 1 && !context.out.json) {
            for (const problem of problems)
              context.out.note(`  ${problem.path}: ${problem.message}`);
          }
          throw error;
        }
      }),
    );

  config
    .command("example")
    .description("print a commented example configuration (the reference DR plan)")
    .action(
      action(async (context) => {
        context.out.raw(EXAMPLE_CONFIG);
      }),
    );

  config
    .command("schema")
    .description("print the JSON Schema of lifeboat.yaml (for editors and CI linting)")
    .action(
      action(async (context) => {
        context.out.raw(renderJsonSchema());
      }),
    );
}
