/**
 * The one error module. Every failure a user can meet is a LifeboatError with a stable code from
 * ERROR_TABLE; the CLI catches once at the top, prints `error[CODE]: message — hint` and exits with
 * the code's exit status. Codes are part of the public interface (scripts match on them): never
 * rename one, only add.
 */

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  integrity: 3,
  storage: 4,
  locked: 5,
  external: 6,
  internal: 70,
} as const;

export type ExitStatus = (typeof EXIT)[keyof typeof EXIT];

interface ErrorSpec {
  exit: ExitStatus;
  /** What the user should do next when the thrower gives no more specific hint. */
  hint: string;
  /** Worth retrying (network blips, throttling, 5xx). Only storage errors set this. */
  transient?: boolean;
}

export const ERROR_TABLE = {
  USAGE: { exit: EXIT.usage, hint: "run the command with --help to see its arguments" },
  CONFIG_NOT_FOUND: {
    exit: EXIT.usage,
    hint: "create one with `lifeboat config example > lifeboat.yaml`, or pass --config",
  },
  CONFIG_PARSE: { exit: EXIT.usage, hint: "fix the YAML syntax at the position shown" },
  CONFIG_INVALID: {
    exit: EXIT.usage,
    hint: "fix the field named; `lifeboat config example` shows every field",
  },
  CONFIG_ENV_MISSING: {
    exit: EXIT.usage,
    hint: "export the variable, or remove the ${...} reference from the configuration",
  },
  KEY_NOT_FOUND: {
    exit: EXIT.usage,
    hint: "create one with `lifeboat key generate`, or fix encryption.identityFile",
  },
  KEY_INVALID: {
    exit: EXIT.usage,
    hint: "an identity starts with AGE-SECRET-KEY-1, a recipient with age1",
  },
  KEY_EXISTS: {
    exit: EXIT.usage,
    hint: "choose another path; lifeboat never overwrites an identity file",
  },
  DECRYPT_FAILED: {
    exit: EXIT.integrity,
    hint: "use the identity file whose recipient was configured when the backup was made",
  },
  REPO_NOT_INITIALISED: { exit: EXIT.usage, hint: "create it with `lifeboat repo init`" },
  REPO_EXISTS: {
    exit: EXIT.usage,
    hint: "this location already holds a repository; use it, or pick another prefix",
  },
  REPO_FORMAT: {
    exit: EXIT.integrity,
    hint: "upgrade lifeboat, or check that this location is a lifeboat repository",
  },
  REPO_UNKNOWN: {
    exit: EXIT.usage,
    hint: "use a repository name defined under `repositories:` in the configuration",
  },
  BACKUP_NOT_FOUND: {
    exit: EXIT.failure,
    hint: "run `lifeboat backups list` to see the backups this repository holds",
  },
  BACKUP_INCOMPLETE: {
    exit: EXIT.integrity,
    hint: "this backup never finished (no manifest); take a new one and run `lifeboat repo prune-incomplete`",
  },
  MANIFEST_CORRUPT: {
    exit: EXIT.integrity,
    hint: "the manifest failed its checksum; restore from another backup or repository",
  },
  OBJECT_MISSING: {
    exit: EXIT.integrity,
    hint: "a stored object listed in the manifest is gone; use another backup or repository",
  },
  OBJECT_CORRUPT: {
    exit: EXIT.integrity,
    hint: "stored bytes do not match the manifest; use another backup or repository",
  },
  OBJECT_TRUNCATED: {
    exit: EXIT.integrity,
    hint: "the stored object is shorter than recorded; use another backup or repository",
  },
  STORAGE_UNREACHABLE: {
    exit: EXIT.storage,
    hint: "check the endpoint address, network and that the storage service is running",
    transient: true,
  },
  STORAGE_TRANSIENT: {
    exit: EXIT.storage,
    hint: "the storage service failed temporarily; try again",
    transient: true,
  },
  STORAGE_AUTH: {
    exit: EXIT.storage,
    hint: "check the access key and secret (credentials come from the environment)",
  },
  STORAGE_DENIED: {
    exit: EXIT.storage,
    hint: "grant these credentials access to the bucket and prefix",
  },
  STORAGE_NO_BUCKET: {
    exit: EXIT.storage,
    hint: "create the bucket, or fix the bucket name in the configuration",
  },
  STORAGE_NOT_FOUND: { exit: EXIT.storage, hint: "the object does not exist" },
  STORAGE_IO: { exit: EXIT.storage, hint: "check the path, free space and permissions" },
  STORAGE_BAD_KEY: {
    exit: EXIT.usage,
    hint: "keys are relative /-separated paths without empty, . or .. segments",
  },
  LOCKED: {
    exit: EXIT.locked,
    hint: "wait for the other run to finish; if it died, `lifeboat repo unlock` removes its lock",
  },
  TOOL_MISSING: {
    exit: EXIT.external,
    hint: "install the tool (Debian: apt-get install postgresql-client)",
  },
  TOOL_FAILED: {
    exit: EXIT.external,
    hint: "read the tool's message above; rerun with --verbose for details",
  },
  PG_CONNECT: {
    exit: EXIT.external,
    hint: "check host, port, user, password and that PostgreSQL is running",
  },
  PG_QUERY: { exit: EXIT.external, hint: "check the database permissions of the configured user" },
  VERIFY_FAILED: {
    exit: EXIT.integrity,
    hint: "the report names each failed object and why; restore from another backup or repository",
  },
  VALIDATION_FAILED: {
    exit: EXIT.failure,
    hint: "the restored data does not match the backup; do not switch traffic to it",
  },
  BUCKET_NOT_VERSIONED: { exit: EXIT.failure, hint: "enable it with `lifeboat bucket protect`" },
  BUCKET_HISTORY_TOO_SHORT: { exit: EXIT.failure, hint: "pick a later time, or an older snapshot" },
  WAL_NOT_CONFIGURED: {
    exit: EXIT.usage,
    hint: "add a `wal:` section (see `lifeboat config example`)",
  },
  WAL_CONFLICT: {
    exit: EXIT.integrity,
    hint: "another cluster archives under the same name: give each cluster its own repository",
  },
  WAL_SPOOL_FULL: {
    exit: EXIT.storage,
    hint: "uploads are failing (see `lifeboat wal status`); PostgreSQL keeps the WAL and retries",
  },
  WAL_NOT_FOUND: {
    exit: EXIT.failure,
    hint: "the file is in no repository; `lifeboat wal status` shows what is archived",
  },
  WAL_GAP: {
    exit: EXIT.integrity,
    hint: "the archive lacks WAL between the base backup and the target; pick another target or backup",
  },
  RECOVERY_FAILED: {
    exit: EXIT.external,
    hint: "PostgreSQL stopped recovery; the server log lines above say why",
  },
  ABORTED: { exit: EXIT.failure, hint: "nothing was changed" },
  NOTIFY_FAILED: {
    exit: EXIT.failure,
    hint: "check the channel's URL or SMTP settings; the run itself is unaffected",
  },
  INTERNAL: {
    exit: EXIT.internal,
    hint: "this is a bug in lifeboat; please report it with --verbose output",
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_TABLE;

export interface ErrorDetails {
  hint?: string;
  cause?: unknown;
  /** Extra machine-readable facts for --json output (never secrets). */
  data?: Record<string, unknown>;
}

export class LifeboatError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  readonly data: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "LifeboatError";
    this.code = code;
    this.hint = details.hint ?? ERROR_TABLE[code].hint;
    this.data = details.data;
  }

  get exitStatus(): ExitStatus {
    return ERROR_TABLE[this.code].exit;
  }

  get transient(): boolean {
    const spec: ErrorSpec = ERROR_TABLE[this.code];
    return spec.transient === true;
  }
}

export function isLifeboatError(error: unknown, code?: ErrorCode): error is LifeboatError {
  return error instanceof LifeboatError && (code === undefined || error.code === code);
}

/** Wraps anything thrown into a LifeboatError; unknown errors become INTERNAL. */
export function toLifeboatError(error: unknown): LifeboatError {
  if (error instanceof LifeboatError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new LifeboatError("INTERNAL", message, { cause: error });
}

/** One line for humans: `error[CODE]: message — hint`. */
export function formatErrorLine(error: LifeboatError): string {
  return `error[${error.code}]: ${oneLine(error.message)} — ${error.hint}`;
}

/** The cause chain, for --verbose. */
export function formatCauseChain(error: unknown): string[] {
  const lines: string[] = [];
  let current: unknown = error instanceof Error ? error.cause : undefined;
  let depth = 0;
  while (current !== undefined && depth < 10) {
    if (current instanceof Error) {
      const code = (current as { code?: unknown }).code;
      lines.push(
        `caused by: ${current.name}${code ? `[${String(code)}]` : ""}: ${oneLine(current.message)}`,
      );
      current = current.cause;
    } else {
      lines.push(`caused by: ${oneLine(String(current))}`);
      current = undefined;
    }
    depth++;
  }
  return lines;
}

export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}
