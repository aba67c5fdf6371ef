import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { EXAMPLE_CONFIG } from "../../src/config/example.js";
import {
  CONFIG_DOC_PATH,
  JSON_SCHEMA_PATH,
  renderConfigurationDoc,
  renderJsonSchema,
} from "../../src/config/generate.js";
import { parseConfigText } from "../../src/config/load.js";
import { durationSeconds } from "../../src/config/schema.js";
import { LifeboatError } from "../../src/errors.js";

const RECIPIENT = "age1td6jz9rqqjwqx67cqwy9vgdxxv4kk3x9gtlx7kn07sjhrl0uq37s32m7m0";

function parse(text: string, env: NodeJS.ProcessEnv = {}) {
  return parseConfigText(text, "lifeboat.yaml", env);
}

function failure(text: string, env: NodeJS.ProcessEnv = {}): LifeboatError {
  try {
    parse(text, env);
  } catch (error) {
    expect(error).toBeInstanceOf(LifeboatError);
    return error as LifeboatError;
  }
  throw new Error("expected the configuration to be rejected");
}

const minimal = `
repositories:
  local: { type: local, path: /tmp/repo }
encryption:
  recipients: [${RECIPIENT}]
`;

describe("configuration", () => {
  it("applies defaults from the schema (the reference plan's objectives)", () => {
    const config = parse(minimal);
    expect(config.objectives).toEqual({ rto: "4h", rpo: "1h" });
    expect(config.retention.keepDays).toBe(30);
    expect(config.compression.algorithm).toBe("zstd");
    expect(config.storage.retryAttempts).toBe(5);
  });

  it("interpolates ${VAR} and ${VAR:-default} in values, with $$ as a literal $", () => {
    const config = parse(
      `
repositories:
  off:
    type: s3
    bucket: \${BUCKET}
    region: \${REGION:-eu-west-1}
    prefix: "a$$b/"
    credentials: { accessKeyId: "\${KEY}", secretAccessKey: "\${SECRET}" }
encryption: { recipients: ["\${RECIPIENT}"] }
`,
      { BUCKET: "backups-eu", KEY: "AKIA", SECRET: "s3cr3t-value", RECIPIENT },
    );
    const repo = config.repositories.off;
    expect(repo?.type).toBe("s3");
    if (repo?.type !== "s3") return;
    expect(repo.bucket).toBe("backups-eu");
    expect(repo.region).toBe("eu-west-1");
    expect(repo.prefix).toBe("a$b/");
    expect(repo.credentials?.secretAccessKey).toBe("s3cr3t-value");
  });

  it("names the variable and the field when an environment variable is missing", () => {
    const error = failure(`repositories:\n  l: { type: local, path: "\${NOPE_DIR}" }\n`);
    expect(error.code).toBe("CONFIG_ENV_MISSING");
    expect(error.message).toContain("repositories.l.path");
    expect(error.message).toContain("NOPE_DIR");
  });

  it("names the file, the field path and what is expected", () => {
    const error = failure(`
repositories:
  off: { type: s3, region: eu-west-2 }
encryption: { recipients: [${RECIPIENT}] }
`);
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.message).toMatch(/^lifeboat\.yaml: repositories\.off\.bucket: required/);
  });

  it("rejects misspelt fields instead of ignoring them", () => {
    const error = failure(`${minimal}\nretention: { keepDyas: 3 }\n`);
    expect(error.message).toContain("retention");
    expect(error.message).toContain('"keepDyas"');
  });

  it("rejects an unknown repository type and bad names", () => {
    expect(
      failure(`repositories:\n  x: { type: ftp, path: /a }\nencryption: { disabled: true }\n`)
        .message,
    ).toContain("repositories.x");
    expect(
      failure(
        `repositories:\n  Bad_Name: { type: local, path: /a }\nencryption: { disabled: true }\n`,
      ).message,
    ).toContain("repositories.Bad_Name");
  });

  it("requires a recipient unless encryption is explicitly disabled", () => {
    const error = failure(`repositories:\n  l: { type: local, path: /a }\n`);
    expect(error.message).toContain("encryption.recipients");
    expect(
      parse(`repositories:\n  l: { type: local, path: /a }\nencryption: { disabled: true }\n`)
        .encryption.disabled,
    ).toBe(true);
  });

  it("reports YAML syntax errors with line and column", () => {
    const error = failure(`repositories:\n  l: { type: local, path: /a\n`);
    expect(error.code).toBe("CONFIG_PARSE");
    expect(error.message).toMatch(/^lifeboat\.yaml:\d+:\d+: /);
  });

  it("never echoes secret values in errors", () => {
    const error = failure(
      `repositories:\n  o: { type: s3, bucket: b, partSizeMiB: "\${SECRET}", credentials: { accessKeyId: a, secretAccessKey: "\${SECRET}" } }\nencryption: { disabled: true }\n`,
      { SECRET: "hunter2-very-secret" },
    );
    expect(error.message).not.toContain("hunter2");
    expect(JSON.stringify(error.data)).not.toContain("hunter2");
  });

  it("the example configuration is valid", () => {
    const config = parse(EXAMPLE_CONFIG, {
      LIFEBOAT_S3_ACCESS_KEY_ID: "a",
      LIFEBOAT_S3_SECRET_ACCESS_KEY: "b",
      LIFEBOAT_AGE_RECIPIENT: RECIPIENT,
      LIFEBOAT_DB_PASSWORD: "pw",
    });
    expect(Object.keys(config.repositories)).toEqual(["local", "offsite"]);
    expect(config.databases.app?.keyTables).toHaveLength(5);
  });

  it("parses durations", () => {
    expect(durationSeconds("4h")).toBe(14_400);
    expect(durationSeconds("30d")).toBe(2_592_000);
    expect(durationSeconds("90s")).toBe(90);
    expect(durationSeconds("250ms")).toBe(0.25);
  });
});

describe("generated configuration artefacts", () => {
  it("schema/lifeboat.schema.json matches the zod schema (run `npm run generate`)", () => {
    expect(readFileSync(JSON_SCHEMA_PATH, "utf8")).toBe(renderJsonSchema());
  });

  it("docs/configuration.md matches the zod schema (run `npm run generate`)", () => {
    expect(readFileSync(CONFIG_DOC_PATH, "utf8")).toBe(renderConfigurationDoc());
  });

  it("documents every top-level field", () => {
    const doc = renderConfigurationDoc();
    for (const field of [
      "repositories",
      "encryption",
      "compression",
      "databases",
      "objectives",
      "retention",
      "storage",
    ]) {
      expect(doc).toContain(`| \`${field}\` |`);
    }
  });
});
