import { readFile } from "node:fs/promises";
import pg from "pg";
import { LifeboatError } from "../errors.js";

/**
 * How lifeboat reaches a PostgreSQL server. One description serves both the in-process client
 * (node-postgres, for queries) and child tools (pg_dump, pg_restore, psql), which get it through
 * libpq environment variables — never argv, where passwords would show up in `ps`.
 */
export interface PgConnection {
  host: string;
  port: number;
  user: string;
  database: string;
  password?: string;
  passwordFile?: string;
  sslmode?: "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full";
}

/** libpq environment for child processes; the caller's own PG* variables are replaced. */
export function libpqEnv(
  connection: PgConnection,
  database = connection.database,
): Record<string, string> {
  const env: Record<string, string> = {
    PGHOST: connection.host,
    PGPORT: String(connection.port),
    PGUSER: connection.user,
    PGDATABASE: database,
    PGAPPNAME: "lifeboat",
    PGCONNECT_TIMEOUT: "15",
  };
  if (connection.password !== undefined) env.PGPASSWORD = connection.password;
  if (connection.passwordFile) env.PGPASSFILE = connection.passwordFile;
  if (connection.sslmode) env.PGSSLMODE = connection.sslmode;
  return env;
}

/** The process environment minus inherited libpq settings, plus `extra`. */
export function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("PG")) env[key] = value;
  }
  return { ...env, ...extra };
}

/** Where a connection points, for messages (never the password). */
export function describeConnection(
  connection: PgConnection,
  database = connection.database,
): string {
  return `${connection.user}@${connection.host}:${connection.port}/${database}`;
}

export async function connect(
  connection: PgConnection,
  database = connection.database,
): Promise<pg.Client> {
  const client = new pg.Client({
    host: connection.host,
    port: connection.port,
    user: connection.user,
    database,
    password: connection.password ?? (await passwordFromPassfile(connection, database)),
    ssl: sslOption(connection.sslmode),
    application_name: "lifeboat",
    connectionTimeoutMillis: 15_000,
  });
  // An idle client whose server goes away emits 'error'; without a listener that kills the process.
  client.on("error", () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw new LifeboatError(
      "PG_CONNECT",
      `cannot connect to PostgreSQL ${describeConnection(connection, database)}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return client;
}

/** Runs `work` with a connected client and always disconnects. */
export async function withClient<T>(
  connection: PgConnection,
  work: (client: pg.Client) => Promise<T>,
  database = connection.database,
): Promise<T> {
  const client = await connect(connection, database);
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function sslOption(mode: PgConnection["sslmode"]): pg.ClientConfig["ssl"] {
  switch (mode) {
    case undefined:
    case "disable":
    case "allow":
    case "prefer":
      // node-postgres cannot fall back between plain and TLS; prefer/allow mean "plain" here, as
      // most local servers have no certificate. Use require or verify-* across networks.
      return false;
    case "require":
      return { rejectUnauthorized: false };
    case "verify-ca":
    case "verify-full":
      return { rejectUnauthorized: true };
  }
}

/** node-postgres ignores PGPASSFILE, so read the passfile the way libpq does. */
async function passwordFromPassfile(
  connection: PgConnection,
  database: string,
): Promise<string | undefined> {
  if (!connection.passwordFile) return undefined;
  let text: string;
  try {
    text = await readFile(connection.passwordFile, "utf8");
  } catch (error) {
    throw new LifeboatError(
      "CONFIG_INVALID",
      `cannot read passwordFile ${connection.passwordFile}`,
      { cause: error },
    );
  }
  const wanted = [connection.host, String(connection.port), database, connection.user];
  for (const line of text.split("\n")) {
    if (!line.trim() || line.startsWith("#")) continue;
    const fields = splitPassfileLine(line);
    if (fields.length < 5) continue;
    if (wanted.every((value, index) => fields[index] === "*" || fields[index] === value))
      return fields[4];
  }
  return undefined;
}

function splitPassfileLine(line: string): string[] {
  const fields: string[] = [];
  let current = "";
  for (let i = 0; i < line.length; i++) {
    const char = line[i];
    if (char === "\\" && i + 1 < line.length) current += line[++i];
    else if (char === ":" && fields.length < 4) {
      fields.push(current);
      current = "";
    } else current += char;
  }
  fields.push(current);
  return fields;
}

/** The connection of a configured database. */
export function connectionFromConfig(database: {
  host: string;
  port: number;
  user: string;
  database: string;
  password?: string | undefined;
  passwordFile?: string | undefined;
  sslmode?: PgConnection["sslmode"] | undefined;
}): PgConnection {
  return {
    host: database.host,
    port: database.port,
    user: database.user,
    database: database.database,
    ...(database.password !== undefined ? { password: database.password } : {}),
    ...(database.passwordFile ? { passwordFile: database.passwordFile } : {}),
    ...(database.sslmode ? { sslmode: database.sslmode } : {}),
  };
}
