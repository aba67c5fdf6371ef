// Regenerates schema/lifeboat.schema.json and docs/configuration.md from the zod schema.
// Run through `npm run generate` (which builds first).
import { writeFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import {
  CONFIG_DOC_PATH,
  JSON_SCHEMA_PATH,
  renderConfigurationDoc,
  renderJsonSchema,
} from "../dist/config/generate.js";

for (const [file, text] of [
  [JSON_SCHEMA_PATH, renderJsonSchema()],
  [CONFIG_DOC_PATH, renderConfigurationDoc()],
]) {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  console.log(`wrote ${file}`);
}
