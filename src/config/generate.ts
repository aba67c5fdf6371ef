import { z } from "zod";
import { configSchema } from "./schema.js";

/**
 * Generated artefacts: the JSON Schema (for editors and CI linting of lifeboat.yaml) and the
 * field reference in docs/configuration.md. Both come from the zod schema so they cannot disagree
 * with what the loader accepts; test/unit/config-generate.test.ts fails when the committed copies drift.
 */

export const JSON_SCHEMA_PATH = "schema/lifeboat.schema.json";
export const CONFIG_DOC_PATH = "docs/configuration.md";

type JsonSchema = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  const?: unknown;
  enum?: unknown[];
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: JsonSchema | boolean;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
};

export function renderJsonSchema(): string {
  const schema = z.toJSONSchema(configSchema, { io: "input", unrepresentable: "any" }) as Record<
    string,
    unknown
  >;
  const withId = {
    $id: "https://lifeboat.dev/schema/lifeboat.schema.json",
    title: "lifeboat.yaml",
    ...schema,
  };
  return `${JSON.stringify(withId, null, 2)}\n`;
}

interface Row {
  path: string;
  type: string;
  required: boolean;
  defaultValue: string;
  description: string;
}

export function renderConfigurationDoc(): string {
  const schema = JSON.parse(renderJsonSchema()) as JsonSchema;
  const rows: Row[] = [];
  walk(schema, "", true, rows);
  const lines = [
    "# Configuration reference",
    "",
    "<!-- Generated from src/config/schema.ts by `npm run generate`. Do not edit by hand. -->",
    "",
    "lifeboat reads one YAML file: `--config <file>`, else `$LIFEBOAT_CONFIG`, else `./lifeboat.yaml`.",
    "Any string value may reference the environment as `${VAR}` or `${VAR:-default}` (`$$` is a",
    "literal `$`); keep secrets in the environment, never in the file. Unknown fields are errors.",
    "`lifeboat config validate` checks a file; `lifeboat config example` prints a commented example.",
    "The JSON Schema is `schema/lifeboat.schema.json`.",
    "",
    "Durations are a number and a unit: `ms`, `s`, `m`, `h`, `d`, `w`, `y` (e.g. `90s`, `4h`, `30d`).",
    "`<name>` stands for a name you choose (lowercase letters, digits, `-`, `_`).",
    "",
    "| field | type | required | default | description |",
    "|---|---|---|---|---|",
    ...rows.map(
      (row) =>
        `| \`${row.path}\` | ${row.type} | ${row.required ? "yes" : "no"} | ${row.defaultValue} | ${escapeCell(row.description)} |`,
    ),
    "",
  ];
  return lines.join("\n");
}

function walk(node: JsonSchema, at: string, required: boolean, rows: Row[]): void {
  if (at) rows.push(describe(node, at, required));
  if (node.properties) {
    const needed = new Set(node.required ?? []);
    for (const [key, child] of Object.entries(node.properties)) {
      walk(child, at ? `${at}.${key}` : key, needed.has(key), rows);
    }
  }
  if (node.additionalProperties && typeof node.additionalProperties === "object") {
    walk(node.additionalProperties, `${at}.<name>`, true, rows);
  }
  for (const variant of node.oneOf ?? []) {
    const discriminator = variant.properties?.type?.const;
    const label = discriminator === undefined ? at : `${at} (type: ${String(discriminator)})`;
    walkVariant(variant, label, rows);
  }
  for (const variant of node.anyOf ?? []) {
    if (variant.properties) walkVariant(variant, at, rows);
  }
  if (node.items?.properties) walkVariant(node.items, `${at}[]`, rows);
  for (const variant of node.items?.anyOf ?? []) {
    if (variant.properties) walkVariant(variant, `${at}[]`, rows);
  }
}

function walkVariant(variant: JsonSchema, at: string, rows: Row[]): void {
  const needed = new Set(variant.required ?? []);
  for (const [key, child] of Object.entries(variant.properties ?? {})) {
    walk(child, `${at}.${key}`, needed.has(key), rows);
  }
}

function describe(node: JsonSchema, at: string, required: boolean): Row {
  return {
    path: at,
    type: typeName(node),
    required: required && node.default === undefined,
    defaultValue: node.default === undefined ? "" : `\`${JSON.stringify(node.default)}\``,
    description: node.description ?? "",
  };
}

function typeName(node: JsonSchema): string {
  if (node.const !== undefined) return `\`${JSON.stringify(node.const)}\``;
  if (node.enum) return node.enum.map((v) => `\`${String(v)}\``).join(" \\| ");
  if (node.oneOf) return "one of the variants below";
  if (node.anyOf) return node.anyOf.map(typeName).join(" or ");
  if (node.type === "array") return `list of ${node.items ? typeName(node.items) : "values"}`;
  if (node.type === "object") return node.additionalProperties ? "map of `<name>`" : "object";
  if (node.format === "uri") return "URL";
  return Array.isArray(node.type) ? node.type.join(" \\| ") : (node.type ?? "any");
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}
