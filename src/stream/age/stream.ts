/**
 * age v1 payload: a 16-byte nonce, then STREAM (ChaCha20-Poly1305 over 64 KiB chunks, nonce =
 * 11-byte big-endian chunk counter + a last-chunk flag byte), as Node Transform streams.
 *
 * Memory stays bounded: each side holds back at most one chunk (it cannot know a chunk is the
 * last until more input or the end arrives) plus the header while it is being read.
 *
 * A decrypted chunk is pushed only after its Poly1305 tag verified, so nothing unauthenticated
 * ever goes downstream. But a stream cut short is only detectable at the end (the last-chunk flag
 * is missing), after earlier, individually authentic chunks have been pushed: a consumer must wait
 * for the stream to finish without error before trusting or committing what it received.
 */

import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { LifeboatError } from "../../errors.js";
import {
  checkIntroPrefix,
  encodeHeader,
  hkdf,
  INTRO,
  MAX_HEADER_SIZE,
  newFileKey,
  parseHeader,
  unwrapFileKey,
  wrapX25519,
} from "./header.js";
import { type AgeIdentity, parseRecipientKey } from "./keys.js";

export const CHUNK_SIZE = 64 * 1024;
const TAG_SIZE = 16;
const SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE;
const PAYLOAD_NONCE_SIZE = 16;
// Chunk counters are 11 bytes on the wire; 6 of them (2^48 chunks = 16 EiB) are plenty.
const MAX_CHUNKS = 2 ** 48;
// Enough to keep the cipher busy while the consumer drains the previous chunk.
const HIGH_WATER_MARK = 2 * SEALED_CHUNK_SIZE;

/**
 * Cuts a byte stream into fixed-size units. The latest full unit is held back until more input
 * shows it is not the final one. Input larger than a unit is processed in place, without copying.
 * The handler must not keep the buffer it gets: the staging buffer is reused.
 */
class Chunker {
  readonly #buf: Buffer;
  #fill = 0;

  constructor(
    private readonly size: number,
    private readonly onChunk: (chunk: Buffer, last: boolean) => void,
  ) {
    this.#buf = Buffer.allocUnsafe(size);
  }

  write(data: Buffer): void {
    let off = 0;
    while (off < data.length) {
      if (this.#fill === this.size) {
        this.onChunk(this.#buf, false);
        this.#fill = 0;
      }
      if (this.#fill === 0 && data.length - off > this.size) {
        this.onChunk(data.subarray(off, off + this.size), false);
        off += this.size;
        continue;
      }
      const n = Math.min(this.size - this.#fill, data.length - off);
      data.copy(this.#buf, this.#fill, off, off + n);
      this.#fill += n;
      off += n;
    }
  }

  end(): void {
    this.onChunk(this.#buf.subarray(0, this.#fill), true);
  }
}

function chunkNonce(counter: number, last: boolean): Buffer {
  if (counter >= MAX_CHUNKS)
    throw new LifeboatError("INTERNAL", "age payload chunk counter overflow");
  const nonce = Buffer.alloc(12);
  nonce.writeUIntBE(counter, 5, 6);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

/** The plaintext if the tag verifies, else null. */
function openChunk(key: KeyObject, counter: number, last: boolean, sealed: Buffer): Buffer | null {
  const split = sealed.length - TAG_SIZE;
  const decipher = createDecipheriv("chacha20-poly1305", key, chunkNonce(counter, last), {
    authTagLength: TAG_SIZE,
  });
  decipher.setAuthTag(sealed.subarray(split));
  const plain = decipher.update(sealed.subarray(0, split));
  try {
    decipher.final();
  } catch {
    return null;
  }
  return plain;
}

function tryTransform(cb: TransformCallback, work: () => void): void {
  try {
    work();
  } catch (error) {
    cb(error as Error);
    return;
  }
  cb();
}

class EncryptStream extends Transform {
  #prefix: Buffer | null;
  readonly #key: KeyObject;
  #counter = 0;
  readonly #chunker = new Chunker(CHUNK_SIZE, (plain, last) => this.#seal(plain, last));

  constructor(recipients: readonly string[]) {
    super({ readableHighWaterMark: HIGH_WATER_MARK, writableHighWaterMark: HIGH_WATER_MARK });
    if (recipients.length === 0) {
      throw new LifeboatError("KEY_INVALID", "encryption needs at least one age recipient");
    }
    const keys = new Map(
      recipients.map((r) => parseRecipientKey(r)).map((k) => [k.toString("hex"), k]),
    );
    const fileKey = newFileKey();
    const header = encodeHeader(
      [...keys.values()].map((k) => wrapX25519(k, fileKey)),
      fileKey,
    );
    const nonce = randomBytes(PAYLOAD_NONCE_SIZE);
    this.#key = createSecretKey(hkdf(fileKey, nonce, "payload"));
    this.#prefix = Buffer.concat([header, nonce]);
  }

  #seal(plain: Buffer, last: boolean): void {
    if (this.#prefix !== null) {
      this.push(this.#prefix);
      this.#prefix = null;
    }
    const cipher = createCipheriv("chacha20-poly1305", this.#key, chunkNonce(this.#counter, last), {
      authTagLength: TAG_SIZE,
    });
    const sealed = cipher.update(plain);
    cipher.final();
    this.push(sealed);
    this.push(cipher.getAuthTag());
    this.#counter++;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, cb: TransformCallback): void {
    tryTransform(cb, () => this.#chunker.write(chunk));
  }

  override _flush(cb: TransformCallback): void {
    // An empty plaintext still gets one (empty) last chunk, as the format requires.
    tryTransform(cb, () => this.#chunker.end());
  }
}

const truncated = (message: string) => new LifeboatError("OBJECT_TRUNCATED", message);
const corrupt = (message: string) => new LifeboatError("OBJECT_CORRUPT", message);

class DecryptStream extends Transform {
  readonly #identities: readonly AgeIdentity[];
  #header: Buffer | null = Buffer.allocUnsafe(1024);
  #headerLen = 0;
  #lineStart = 0;
  #fileKey: Buffer | null = null;
  readonly #nonce = Buffer.alloc(PAYLOAD_NONCE_SIZE);
  #nonceLen = 0;
  #key: KeyObject | null = null;
  #chunker: Chunker | null = null;
  #counter = 0;

  constructor(identities: readonly AgeIdentity[]) {
    super({ readableHighWaterMark: HIGH_WATER_MARK, writableHighWaterMark: HIGH_WATER_MARK });
    if (identities.length === 0) {
      throw new LifeboatError("KEY_INVALID", "decryption needs at least one age identity");
    }
    this.#identities = identities;
  }

  #appendHeader(piece: Buffer): void {
    let buf = this.#header!;
    const needed = this.#headerLen + piece.length;
    if (needed > MAX_HEADER_SIZE)
      throw corrupt("age header is larger than 1 MiB; not a lifeboat object");
    if (needed > buf.length) {
      const grown = Buffer.allocUnsafe(Math.min(MAX_HEADER_SIZE, Math.max(needed, 2 * buf.length)));
      buf.copy(grown, 0, 0, this.#headerLen);
      this.#header = buf = grown;
    }
    piece.copy(buf, this.#headerLen);
    const checkedBefore = this.#headerLen >= INTRO.length;
    this.#headerLen = needed;
    if (!checkedBefore) checkIntroPrefix(buf.subarray(0, needed));
  }

  /** Consumes header bytes line by line; returns the input after the header once it is complete. */
  #feedHeader(data: Buffer): Buffer | null {
    let off = 0;
    while (off < data.length) {
      const nl = data.indexOf(0x0a, off);
      const end = nl === -1 ? data.length : nl + 1;
      this.#appendHeader(data.subarray(off, end));
      off = end;
      if (nl === -1) break;
      const buf = this.#header!;
      const start = this.#lineStart;
      this.#lineStart = this.#headerLen;
      // Only the MAC line starts with "---": stanza lines start with "->", bodies are base64.
      if (buf[start] === 0x2d && buf[start + 1] === 0x2d && buf[start + 2] === 0x2d) {
        const header = parseHeader(buf.subarray(0, this.#headerLen));
        this.#fileKey = unwrapFileKey(header, this.#identities);
        this.#header = null;
        return data.subarray(off);
      }
    }
    return null;
  }

  #feedPayload(data: Buffer): void {
    if (this.#chunker === null) {
      const take = Math.min(PAYLOAD_NONCE_SIZE - this.#nonceLen, data.length);
      data.copy(this.#nonce, this.#nonceLen, 0, take);
      this.#nonceLen += take;
      if (this.#nonceLen < PAYLOAD_NONCE_SIZE) return;
      data = data.subarray(take);
      this.#key = createSecretKey(hkdf(this.#fileKey!, this.#nonce, "payload"));
      this.#chunker = new Chunker(SEALED_CHUNK_SIZE, (sealed, last) => this.#open(sealed, last));
    }
    this.#chunker.write(data);
  }

  #open(sealed: Buffer, atEnd: boolean): void {
    const key = this.#key!;
    const n = this.#counter;
    if (!atEnd) {
      // More input follows, so this must be a non-final chunk.
      const plain = openChunk(key, n, false, sealed);
      if (plain === null) {
        if (openChunk(key, n, true, sealed) !== null) {
          throw corrupt(`trailing data after the final age payload chunk (chunk ${n})`);
        }
        throw corrupt(`age payload chunk ${n} failed authentication: the data was altered`);
      }
      this.push(plain);
      this.#counter++;
      return;
    }
    if (sealed.length === 0) throw truncated("age payload has no chunks: the input was cut short");
    if (sealed.length < TAG_SIZE) {
      throw truncated(`input ends inside age payload chunk ${n}: the input was cut short`);
    }
    const plain = openChunk(key, n, true, sealed);
    if (plain !== null) {
      if (plain.length === 0 && n > 0) throw corrupt("age payload ends with an empty final chunk");
      this.push(plain);
      this.#counter++;
      return;
    }
    if (sealed.length === SEALED_CHUNK_SIZE && openChunk(key, n, false, sealed) !== null) {
      throw truncated(
        `age payload ends after chunk ${n} without its final chunk: the input was cut short`,
      );
    }
    // A tag failure here is either damage or a cut inside this chunk; the two are
    // cryptographically indistinguishable, so the error says so.
    throw corrupt(
      `age payload chunk ${n} failed authentication: the data was altered, or the input was cut inside this chunk`,
    );
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, cb: TransformCallback): void {
    tryTransform(cb, () => {
      let rest: Buffer | null = chunk;
      if (this.#fileKey === null) rest = this.#feedHeader(chunk);
      if (rest !== null) this.#feedPayload(rest);
    });
  }

  override _flush(cb: TransformCallback): void {
    tryTransform(cb, () => {
      if (this.#fileKey === null) {
        throw this.#headerLen === 0
          ? truncated("input is empty, not an age-encrypted file")
          : truncated("input ends inside the age header: the input was cut short");
      }
      if (this.#chunker === null) throw truncated("input ends before the age payload nonce");
      this.#chunker.end();
    });
  }
}

/** Encrypts to every recipient (`age1…`); each one's identity alone can decrypt. */
export function createEncryptStream(recipients: string[]): Transform {
  return new EncryptStream(recipients);
}

/** Decrypts with whichever identity matches one of the file's X25519 recipients. */
export function createDecryptStream(identities: AgeIdentity[]): Transform {
  return new DecryptStream(identities);
}
