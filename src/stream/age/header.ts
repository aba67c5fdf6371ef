/**
 * The age v1 header (https://age-encryption.org/v1): intro line, recipient stanzas, MAC line.
 * Parsing is strict (canonical unpadded base64, exact column rule) because the MAC covers the
 * header's bytes: accepting two spellings of one header would let them differ undetected.
 */

import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import { LifeboatError } from "../../errors.js";
import { type AgeIdentity, x25519, x25519RawPublic } from "./keys.js";

export const INTRO = "age-encryption.org/v1\n";
const ARMOR_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----";
const X25519_INFO = "age-encryption.org/v1/X25519";
const COLUMNS = 64;
export const FILE_KEY_SIZE = 16;
/** A header bigger than this is not a header; bounds what decryption buffers before the payload. */
export const MAX_HEADER_SIZE = 1 << 20;

export interface Stanza {
  type: string;
  /** Arguments after the type. */
  args: string[];
  body: Buffer;
}

export interface Header {
  stanzas: Stanza[];
  /** The header bytes the MAC covers: everything up to and including `---`. */
  macInput: Buffer;
  mac: Buffer;
}

const NOT_AGE_HINT =
  "this is not an age-encrypted file; check that the right object or file was given";

function corrupt(message: string, hint?: string): LifeboatError {
  return new LifeboatError("OBJECT_CORRUPT", message, hint === undefined ? {} : { hint });
}

export function b64(data: Buffer): string {
  return data.toString("base64").replace(/=+$/, "");
}

/** Unpadded base64 in canonical form only (no padding, no stray trailing bits), else null. */
export function b64Strict(text: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]*$/.test(text) || text.length % 4 === 1) return null;
  const data = Buffer.from(text, "base64");
  return b64(data) === text ? data : null;
}

export function hkdf(ikm: Buffer, salt: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync("sha256", ikm, salt, info, 32));
}

const ZERO_NONCE = Buffer.alloc(12);

export function wrapX25519(recipientKey: Buffer, fileKey: Buffer): Stanza {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const share = x25519RawPublic(publicKey);
  const wrapKey = hkdf(
    x25519(privateKey, recipientKey),
    Buffer.concat([share, recipientKey]),
    X25519_INFO,
  );
  const cipher = createCipheriv("chacha20-poly1305", wrapKey, ZERO_NONCE, { authTagLength: 16 });
  const body = Buffer.concat([cipher.update(fileKey), cipher.final(), cipher.getAuthTag()]);
  return { type: "X25519", args: [b64(share)], body };
}

/** The file key if this stanza was made for this identity, null if it was made for another. */
function unwrapX25519(share: Buffer, body: Buffer, identity: AgeIdentity): Buffer | null {
  const salt = Buffer.concat([share, identity.publicKey]);
  const wrapKey = hkdf(identity.sharedSecret(share), salt, X25519_INFO);
  const decipher = createDecipheriv("chacha20-poly1305", wrapKey, ZERO_NONCE, {
    authTagLength: 16,
  });
  decipher.setAuthTag(body.subarray(FILE_KEY_SIZE));
  const fileKey = decipher.update(body.subarray(0, FILE_KEY_SIZE));
  try {
    decipher.final();
  } catch {
    return null;
  }
  return fileKey;
}

function headerMac(fileKey: Buffer, macInput: Buffer): Buffer {
  const key = hkdf(fileKey, Buffer.alloc(0), "header");
  return createHmac("sha256", key).update(macInput).digest();
}

export function encodeHeader(stanzas: Stanza[], fileKey: Buffer): Buffer {
  let text = INTRO;
  for (const stanza of stanzas) {
    text += `-> ${[stanza.type, ...stanza.args].join(" ")}\n`;
    const body = b64(stanza.body);
    // Full 64-column lines, then one shorter line that ends the body, empty if need be.
    for (let i = 0; i + COLUMNS <= body.length; i += COLUMNS)
      text += body.slice(i, i + COLUMNS) + "\n";
    text += body.slice(body.length - (body.length % COLUMNS)) + "\n";
  }
  text += "---";
  const macInput = Buffer.from(text, "latin1");
  return Buffer.concat([
    macInput,
    Buffer.from(` ${b64(headerMac(fileKey, macInput))}\n`, "latin1"),
  ]);
}

/**
 * Judges the first bytes of a would-be age file, so a large non-age input fails at once rather than
 * after MAX_HEADER_SIZE bytes. Throws on a mismatch; returns silently if the prefix still fits.
 */
export function checkIntroPrefix(prefix: Buffer): void {
  const n = Math.min(prefix.length, INTRO.length);
  if (prefix.toString("latin1", 0, n) === INTRO.slice(0, n)) return;
  const head = prefix.toString("latin1", 0, Math.min(prefix.length, 64));
  if (head.startsWith(ARMOR_BEGIN)) {
    throw corrupt(
      "input is an ASCII-armored age file, which lifeboat does not read",
      "decrypt it with `age -d` first",
    );
  }
  if (head.startsWith("age-encryption.org/")) {
    throw corrupt(
      "input is an age file of an unsupported version (only v1 is supported)",
      NOT_AGE_HINT,
    );
  }
  throw corrupt(
    "input is not an age-encrypted file (no age-encryption.org/v1 header)",
    NOT_AGE_HINT,
  );
}

function isVisible(arg: string): boolean {
  return arg.length > 0 && /^[\x21-\x7e]+$/.test(arg);
}

/** Parses a complete header: `bytes` ends right after the MAC line's newline. */
export function parseHeader(bytes: Buffer): Header {
  checkIntroPrefix(bytes);
  const text = bytes.toString("latin1");
  if (!text.endsWith("\n")) throw corrupt("age header is incomplete");
  const lines = text.slice(0, -1).split("\n");
  const bad = (i: number, why: string) => corrupt(`malformed age header (line ${i + 1}: ${why})`);
  const stanzas: Stanza[] = [];
  let i = 1;
  while (i < lines.length && lines[i]!.startsWith("-> ")) {
    const args = lines[i]!.slice(3).split(" ");
    if (!args.every(isVisible)) throw bad(i, "invalid stanza arguments");
    const parts: Buffer[] = [];
    for (;;) {
      i++;
      const line = lines[i];
      if (line === undefined) throw bad(i, "stanza body is missing");
      if (line.length > COLUMNS) throw bad(i, "stanza body line longer than 64 columns");
      const part = b64Strict(line);
      if (part === null) throw bad(i, "stanza body is not canonical base64");
      parts.push(part);
      if (line.length < COLUMNS) break;
    }
    i++;
    stanzas.push({ type: args[0]!, args: args.slice(1), body: Buffer.concat(parts) });
  }
  const macLine = lines[i];
  if (macLine === undefined || !macLine.startsWith("--- ") || i !== lines.length - 1) {
    throw bad(i, "expected a stanza or the MAC line");
  }
  const mac = b64Strict(macLine.slice(4));
  if (mac === null || mac.length !== 32) throw bad(i, "invalid header MAC");
  if (stanzas.length === 0) throw corrupt("age header lists no recipients");
  const macInput = bytes.subarray(0, text.length - macLine.length - 1 + 3);
  return { stanzas, macInput, mac };
}

/**
 * Finds the file key by trying every X25519 stanza against every identity, skipping stanzas of
 * other types (other recipients' keys), then checks the header MAC with it.
 */
export function unwrapFileKey(header: Header, identities: readonly AgeIdentity[]): Buffer {
  let x25519Count = 0;
  for (const stanza of header.stanzas) {
    if (stanza.type === "scrypt") {
      throw new LifeboatError("DECRYPT_FAILED", "input is passphrase-encrypted (age -p)", {
        hint: "lifeboat decrypts with identity files only; decrypt it with `age -d`",
      });
    }
    if (stanza.type !== "X25519") continue;
    x25519Count++;
    const share = stanza.args.length === 1 ? b64Strict(stanza.args[0]!) : null;
    if (share === null || share.length !== 32 || stanza.body.length !== 32) {
      throw corrupt("malformed X25519 stanza in the age header");
    }
    for (const identity of identities) {
      const fileKey = unwrapX25519(share, stanza.body, identity);
      if (fileKey === null) continue;
      if (!timingSafeEqual(headerMac(fileKey, header.macInput), header.mac)) {
        throw corrupt("age header MAC mismatch: the header was altered or damaged");
      }
      return fileKey;
    }
  }
  const others = header.stanzas.length - x25519Count;
  throw new LifeboatError(
    "DECRYPT_FAILED",
    `no identity matches the file's recipients (${x25519Count} X25519 recipient(s)` +
      `${others > 0 ? ` and ${others} of other types` : ""}; tried ${identities.length} identity(ies): ` +
      `${identities.map((id) => id.recipient).join(", ")})`,
  );
}

export function newFileKey(): Buffer {
  return randomBytes(FILE_KEY_SIZE);
}
