import { PassThrough, pipeline, type Readable, type Transform } from "node:stream";
import { LifeboatError, isLifeboatError } from "../errors.js";
import {
  createDecryptStream,
  createEncryptStream,
  recipientFingerprint,
  type AgeIdentity,
} from "./age/index.js";
import {
  type CompressionAlgorithm,
  createCompressStream,
  createDecompressStream,
  DEFAULT_LEVEL,
} from "./compress.js";
import { type Digest, DigestStage, STREAM_CHUNK } from "./digest.js";

export interface EncodeSettings {
  compression: CompressionAlgorithm;
  level?: number;
  /** zstd worker threads (0 = compress on the calling thread). */
  threads?: number;
  /** age recipients; empty means the object is stored unencrypted. */
  recipients: readonly string[];
}

export interface CompressionFacts {
  algorithm: CompressionAlgorithm;
  level?: number;
}

export interface EncryptionFacts {
  format: "age-v1";
  /** recipientFingerprint() of each recipient able to decrypt (recipients themselves are public). */
  recipients: string[];
}

export interface EncodedFacts {
  plain: Digest;
  stored: Digest;
  compression: CompressionFacts;
  encryption: EncryptionFacts | null;
}

export interface Encoding {
  /** The bytes to store. */
  output: Readable;
  /** Valid once `output` has ended. */
  facts(): EncodedFacts;
}

/** plaintext → sha256/count → compress → encrypt → sha256/count → storage. */
export function encode(source: Readable, settings: EncodeSettings): Encoding {
  const plain = new DigestStage();
  const stored = new DigestStage();
  const compressor = createCompressStream(settings.compression, settings.level, settings.threads);
  const encryptor =
    settings.recipients.length > 0 ? createEncryptStream([...settings.recipients]) : undefined;
  const output = chain([source, plain, compressor, encryptor, stored], (error) => error);
  const level =
    settings.compression === "none"
      ? undefined
      : (settings.level ?? DEFAULT_LEVEL[settings.compression]);
  return {
    output,
    facts: () => ({
      plain: plain.result(),
      stored: stored.result(),
      compression: { algorithm: settings.compression, ...(level === undefined ? {} : { level }) },
      encryption: encryptor
        ? { format: "age-v1", recipients: settings.recipients.map((r) => recipientFingerprint(r)) }
        : null,
    }),
  };
}

export interface StoredObjectFacts {
  key: string;
  size: number;
  sha256: string;
  plain: Digest;
  compression: CompressionFacts;
  encryption: EncryptionFacts | null;
}

export interface DecodeOptions {
  identities?: readonly AgeIdentity[];
  /** Check plaintext sha256/size too (needs the full object; skip for partial reads). */
  checkPlain?: boolean;
}

/**
 * storage → sha256 check → decrypt → decompress → sha256 check → consumer. Checks fire as stream
 * errors at the end, so the consumer sees an error, never a clean end, for bytes that differ from
 * the manifest. Consumers must therefore treat data as good only after the stream ended cleanly.
 */
export function decode(
  stored: Readable,
  facts: StoredObjectFacts,
  options: DecodeOptions = {},
): Readable {
  const label = `object ${facts.key}`;
  const storedCheck = new DigestStage({
    label: `stored bytes of ${label}`,
    sha256: facts.sha256,
    bytes: facts.size,
  });
  let decryptor: Transform | undefined;
  if (facts.encryption) {
    const identities = options.identities ?? [];
    if (identities.length === 0) {
      throw new LifeboatError(
        "KEY_NOT_FOUND",
        `${label} is encrypted and no identity is configured`,
        {
          hint: "set encryption.identityFile in the configuration, or pass --identity <file>",
        },
      );
    }
    decryptor = createDecryptStream([...identities]);
  }
  const decompressor = createDecompressStream(facts.compression.algorithm);
  const plainCheck =
    options.checkPlain === false
      ? undefined
      : new DigestStage({
          label: `restored content of ${label}`,
          sha256: facts.plain.sha256,
          bytes: facts.plain.bytes,
        });
  // Decompressor errors mean the bytes are bad, not that lifeboat is: report them as corruption.
  return chain([stored, storedCheck, decryptor, decompressor, plainCheck], (error) =>
    isLifeboatError(error) ? error : asCorrupt(error, label),
  );
}

/**
 * Runs the stages as one pipeline and hands back a separate output stream, so the error the
 * consumer sees can be translated (pipeline itself would re-emit the raw stage error), and so the
 * consumer going away tears the whole chain down.
 */
export function chain(
  stages: (Readable | Transform | undefined)[],
  mapError: (error: Error) => Error,
): Readable {
  const present = stages.filter(isStream) as [Readable, ...Transform[]];
  const last = present[present.length - 1] as Readable;
  const output = new PassThrough({ highWaterMark: STREAM_CHUNK });
  let settled = false;
  if (present.length > 1) {
    pipeline(present, (error) => {
      settled = true;
      if (error) output.destroy(mapError(error));
    });
  } else {
    last.once("error", (error) => output.destroy(mapError(error)));
  }
  last.pipe(output);
  output.once("close", () => {
    if (!settled && !output.readableEnded) present[0].destroy();
  });
  return output;
}

function asCorrupt(error: Error, label: string): LifeboatError {
  const code = (error as { code?: string }).code;
  if (code === "ABORT_ERR" || code === "ERR_STREAM_PREMATURE_CLOSE") {
    return new LifeboatError("STORAGE_TRANSIENT", `reading ${label} was interrupted`, {
      cause: error,
    });
  }
  return new LifeboatError("OBJECT_CORRUPT", `${label} cannot be decoded: ${error.message}`, {
    cause: error,
  });
}

function isStream<T>(value: T | undefined): value is T {
  return value !== undefined;
}
