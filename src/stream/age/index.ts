/**
 * age v1 (https://age-encryption.org/v1) with X25519 recipients, streaming, interoperable with the
 * `age` CLI. Built on node:crypto only.
 */

export { createDecryptStream, createEncryptStream, CHUNK_SIZE } from "./stream.js";
export {
  AgeIdentity,
  generateIdentity,
  identityToRecipient,
  loadIdentityFile,
  parseIdentity,
  parseIdentityFile,
  parseRecipient,
  recipientFingerprint,
  writeIdentityFile,
} from "./keys.js";
