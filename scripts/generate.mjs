// Regenerates schema/lifeboat.schema.json and docs/configuration.md from the zod schema, and
// docs/cli.md from the command definitions and the error table.
// Run through `npm run generate` (which builds first).
import { writeFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import {
  CONFIG_DOC_PATH,
  JSON_SCHEMA_PATH,
  renderConfigurationDoc,
  renderJsonSchema,
} from "../dist/config/generate.js";
import { CLI_DOC_PATH, renderCliReference } from "../dist/cli/reference.js";

for (const [file, text] of [
  [JSON_SCHEMA_PATH, renderJsonSchema()],
  [CONFIG_DOC_PATH, renderConfigurationDoc()],
  [CLI_DOC_PATH, await renderCliReference()],
]) {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  console.log(`wrote ${file}`);
}
