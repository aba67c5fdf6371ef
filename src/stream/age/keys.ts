/**
 * age X25519 keys: identities (`AGE-SECRET-KEY-1…`, bech32, upper case) and recipients (`age1…`).
 *
 * Secret material never reaches an error message, a log line or util.inspect: AgeIdentity keeps its
 * key in a private field, and parse errors name the file and line, never the line's text.
 */

import {
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import { open, readFile, stat, unlink } from "node:fs/promises";
import { LifeboatError } from "../../errors.js";
import { bech32Decode, bech32Encode, Bech32Error } from "./bech32.js";

const IDENTITY_HRP = "age-secret-key-";
const RECIPIENT_HRP = "age";
// node:crypto takes raw X25519 keys only wrapped in DER; these are the fixed prefixes (RFC 8410).
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");
// An identity file is a few lines; anything bigger is almost surely the wrong file.
const MAX_IDENTITY_FILE = 1 << 20;

export function x25519PublicKeyObject(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: "der", type: "spki" });
}

export function x25519RawPublic(key: KeyObject): Buffer {
  return key.export({ format: "der", type: "spki" }).subarray(SPKI_PREFIX.length);
}

/**
 * X25519 that refuses the all-zero output: a low-order peer share would otherwise give a shared
 * secret independent of our key (OpenSSL already throws for it; the explicit check is belt and braces).
 */
export function x25519(privateKey: KeyObject, peerRaw: Buffer): Buffer {
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey, publicKey: x25519PublicKeyObject(peerRaw) });
  } catch (cause) {
    throw new LifeboatError("DECRYPT_FAILED", "X25519 key agreement failed (low-order share)", {
      cause,
    });
  }
  if (shared.every((b) => b === 0)) {
    throw new LifeboatError("DECRYPT_FAILED", "X25519 key agreement gave the all-zero secret");
  }
  return shared;
}

export class AgeIdentity {
  readonly recipient: string;
  /** Raw 32-byte X25519 public key (part of the stanza key-derivation salt). */
  readonly publicKey: Buffer;
  readonly #privateKey: KeyObject;

  /** Use parseIdentity / parseIdentityFile / loadIdentityFile instead. */
  constructor(privateKey: KeyObject) {
    this.#privateKey = privateKey;
    this.publicKey = x25519RawPublic(createPublicKey(privateKey));
    this.recipient = bech32Encode(RECIPIENT_HRP, this.publicKey);
  }

  /** X25519 between this identity and an ephemeral share from a stanza. */
  sharedSecret(shareRaw: Buffer): Buffer {
    return x25519(this.#privateKey, shareRaw);
  }

  toString(): string {
    return `AgeIdentity(${this.recipient})`;
  }

  toJSON(): { recipient: string } {
    return { recipient: this.recipient };
  }
}

function keyError(message: string, cause?: unknown): LifeboatError {
  // Bech32Error messages are generic by construction, so they are safe to append.
  const detail = cause instanceof Bech32Error ? `: ${cause.message}` : "";
  return new LifeboatError("KEY_INVALID", message + detail);
}

function decodeIdentity(text: string, where: string): Buffer {
  if (!text.toUpperCase().startsWith("AGE-SECRET-KEY-1")) {
    const what = text.startsWith("age1")
      ? "is a recipient (public key), not an identity"
      : "is not an age identity";
    throw new LifeboatError("KEY_INVALID", `${where} ${what}`);
  }
  let decoded;
  try {
    decoded = bech32Decode(text);
  } catch (cause) {
    throw keyError(`${where} is not a valid age identity`, cause);
  }
  if (decoded.hrp !== IDENTITY_HRP || decoded.data.length !== 32) {
    throw keyError(`${where} is not a valid age X25519 identity`);
  }
  return decoded.data;
}

function identityFromRaw(raw: Buffer): AgeIdentity {
  const key = createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, raw]),
    format: "der",
    type: "pkcs8",
  });
  return new AgeIdentity(key);
}

/** Parses one `AGE-SECRET-KEY-1…` string. */
export function parseIdentity(text: string): AgeIdentity {
  return identityFromRaw(decodeIdentity(text.trim(), "the identity"));
}

/** Validates an `age1…` recipient and returns its 32-byte X25519 public key. */
export function parseRecipientKey(text: string): Buffer {
  const trimmed = text.trim();
  if (trimmed.toUpperCase().startsWith("AGE-SECRET-KEY-")) {
    // Never echo it: it is a secret pasted where a public key belongs.
    throw new LifeboatError(
      "KEY_INVALID",
      "a secret identity was given where a recipient (public key) is expected",
      { hint: "use the `# public key: age1…` line of the identity file, never the secret key" },
    );
  }
  const shown = /^age1[a-z0-9]*$/.test(trimmed) ? ` "${trimmed.slice(0, 12)}…"` : "";
  if (!/^age1/i.test(trimmed)) {
    throw new LifeboatError("KEY_INVALID", `recipient${shown} does not start with age1`);
  }
  let decoded;
  try {
    decoded = bech32Decode(trimmed);
  } catch (cause) {
    throw keyError(`recipient${shown} is not a valid age recipient`, cause);
  }
  if (decoded.hrp !== RECIPIENT_HRP || decoded.data.length !== 32) {
    throw keyError(`recipient${shown} is not an age X25519 recipient`);
  }
  return decoded.data;
}

/** Returns the canonical (lower-case) form of an `age1…` recipient, validating it. */
export function parseRecipient(text: string): string {
  return bech32Encode(RECIPIENT_HRP, parseRecipientKey(text));
}

export function generateIdentity(): { identity: string; recipient: string } {
  const { privateKey } = generateKeyPairSync("x25519");
  const raw = privateKey.export({ format: "der", type: "pkcs8" }).subarray(PKCS8_PREFIX.length);
  const identity = bech32Encode(IDENTITY_HRP, raw).toUpperCase();
  return { identity, recipient: new AgeIdentity(privateKey).recipient };
}

export function identityToRecipient(identity: string): string {
  return parseIdentity(identity).recipient;
}

/**
 * A short stable id for a recipient, safe to store in manifests: `age1fp:` + the first 16 hex
 * digits (64 bits) of SHA-256 over the canonical lower-case recipient string. Hashing the string
 * (not the raw key) keeps it reproducible with `printf %s age1… | sha256sum`; 64 bits tell apart
 * the handful of keys one deployment uses, and it is no secret (the recipient is public anyway).
 */
export function recipientFingerprint(recipient: string): string {
  const canonical = parseRecipient(recipient);
  return "age1fp:" + createHash("sha256").update(canonical).digest("hex").slice(0, 16);
}

/**
 * Parses age-keygen's format: one identity per line, `#` comments and blank lines ignored.
 * `source` names the file in errors.
 */
export function parseIdentityFile(text: string, source = "identity file"): AgeIdentity[] {
  const identities: AgeIdentity[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    identities.push(identityFromRaw(decodeIdentity(line, `line ${i + 1} of ${source}`)));
  }
  if (identities.length === 0) {
    throw new LifeboatError("KEY_INVALID", `${source} contains no age identity`);
  }
  return identities;
}

function ioCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

export async function loadIdentityFile(path: string): Promise<AgeIdentity[]> {
  let text: string;
  try {
    const info = await stat(path);
    if (!info.isFile())
      throw new LifeboatError("KEY_INVALID", `identity file ${path} is not a file`);
    if (info.size > MAX_IDENTITY_FILE) {
      throw new LifeboatError("KEY_INVALID", `identity file ${path} is too large to be one`);
    }
    text = await readFile(path, "utf8");
  } catch (error) {
    if (error instanceof LifeboatError) throw error;
    const code = ioCode(error);
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new LifeboatError("KEY_NOT_FOUND", `identity file ${path} does not exist`, {
        cause: error,
      });
    }
    throw new LifeboatError("KEY_NOT_FOUND", `cannot read identity file ${path} (${code})`, {
      cause: error,
      hint: "check the file's permissions; it should be readable only by the user running lifeboat",
    });
  }
  return parseIdentityFile(text, `identity file ${path}`);
}

/** Writes an identity the way age-keygen does, mode 0600, never replacing an existing file. */
export async function writeIdentityFile(path: string, identity: string): Promise<void> {
  const recipient = identityToRecipient(identity);
  const created = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
  const body = `# created: ${created}\n# public key: ${recipient}\n${identity.trim()}\n`;
  let handle;
  try {
    handle = await open(path, "wx", 0o600);
  } catch (error) {
    const code = ioCode(error);
    if (code === "EEXIST") {
      throw new LifeboatError("KEY_EXISTS", `identity file ${path} already exists`, {
        cause: error,
      });
    }
    throw new LifeboatError("STORAGE_IO", `cannot create identity file ${path} (${code})`, {
      cause: error,
    });
  }
  try {
    // The open mode is filtered by umask; chmod makes 0600 exact whatever the umask.
    await handle.chmod(0o600);
    await handle.writeFile(body, "utf8");
    await handle.sync();
    await handle.close();
  } catch (error) {
    // A half-written key file would block the retry with KEY_EXISTS; it holds nothing usable yet.
    await handle.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw new LifeboatError("STORAGE_IO", `cannot write identity file ${path} (${ioCode(error)})`, {
      cause: error,
    });
  }
}
