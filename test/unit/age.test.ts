import { execFileSync, spawn } from "node:child_process";
import { createCipheriv, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, Writable, type Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { inspect } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isLifeboatError, type ErrorCode } from "../../src/errors.js";
import { bech32Decode, bech32Encode } from "../../src/stream/age/bech32.js";
import {
  encodeHeader,
  hkdf,
  newFileKey,
  parseHeader,
  wrapX25519,
} from "../../src/stream/age/header.js";
import {
  type AgeIdentity,
  createDecryptStream,
  createEncryptStream,
  generateIdentity,
  identityToRecipient,
  loadIdentityFile,
  parseIdentity,
  parseIdentityFile,
  parseRecipient,
  recipientFingerprint,
  writeIdentityFile,
} from "../../src/stream/age/index.js";

const K = 65536;
const SEALED = K + 16;
let dir: string;
let mine: { identity: string; recipient: string; file: string };
let cli: { text: string; recipient: string; file: string };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lifeboat-age-"));
  const generated = generateIdentity();
  mine = { ...generated, file: join(dir, "mine.txt") };
  await writeIdentityFile(mine.file, generated.identity);
  const file = join(dir, "cli.txt");
  execFileSync("age-keygen", ["-o", file], { stdio: ["ignore", "ignore", "ignore"] });
  const text = await readFile(file, "utf8");
  cli = { text, recipient: execFileSync("age-keygen", ["-y", file]).toString().trim(), file };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function* pieces(data: Buffer, size: number | (() => number)): Generator<Buffer> {
  for (let i = 0; i < data.length;) {
    const n = typeof size === "number" ? size : size();
    yield data.subarray(i, i + n);
    i += n;
  }
}

const randomPieces = () => 1 + Math.floor(Math.random() * 3 * K);

async function run(
  transform: Transform,
  data: Buffer,
  size: number | (() => number) = randomPieces,
): Promise<{ out: Buffer; error: unknown }> {
  const parts: Buffer[] = [];
  let error: unknown;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(chunk);
      cb();
    },
  });
  try {
    await pipeline(Readable.from(pieces(data, size)), transform, sink);
  } catch (e) {
    error = e;
  }
  return { out: Buffer.concat(parts), error };
}

async function encrypt(data: Buffer, recipients: string[], size?: number): Promise<Buffer> {
  const { out, error } = await run(createEncryptStream(recipients), data, size);
  if (error !== undefined) throw error;
  return out;
}

async function decrypt(data: Buffer, ids: AgeIdentity[], size?: number): Promise<Buffer> {
  const { out, error } = await run(createDecryptStream(ids), data, size);
  if (error !== undefined) throw error;
  return out;
}

/** Decrypts expecting failure; returns the error and whatever plaintext was emitted first. */
async function decryptFails(data: Buffer, ids: AgeIdentity[], code: ErrorCode | ErrorCode[]) {
  const { out, error } = await run(createDecryptStream(ids), data);
  const codes = Array.isArray(code) ? code : [code];
  if (!isLifeboatError(error) || !codes.includes(error.code)) {
    throw new Error(`expected ${codes.join("|")}, got ${String(error)}`, { cause: error });
  }
  return { error, out };
}

async function ageCli(args: string[], streams: (Readable | Transform)[]): Promise<Buffer> {
  const child = spawn("age", args, { stdio: ["pipe", "pipe", "pipe"] });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on("data", (c: Buffer) => stdout.push(c));
  child.stderr.on("data", (c: Buffer) => stderr.push(c));
  const exited = new Promise<number>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? -1));
  });
  const fed = pipeline([...streams, child.stdin]).catch((e: unknown) => e);
  const code = await exited;
  const feedError = await fed;
  if (code !== 0) throw new Error(`age exited ${code}: ${Buffer.concat(stderr).toString()}`);
  if (feedError !== undefined) throw feedError;
  return Buffer.concat(stdout);
}

function headerLength(file: Buffer): number {
  return file.indexOf("\n", file.indexOf("\n---") + 1) + 1;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

const ids = () => parseIdentityFile(cli.text).concat(parseIdentity(mine.identity));

describe("bech32", () => {
  it("accepts the BIP-173 valid vectors and round-trips them", () => {
    for (const s of [
      "A12UEL5L",
      "a12uel5l",
      "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
      "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
      "11" + "q".repeat(82) + "c8247j",
    ]) {
      const { hrp, data } = bech32Decode(s);
      expect(bech32Encode(hrp, data)).toBe(s.toLowerCase());
    }
  });

  it("rejects the BIP-173 invalid vectors and mixed case", () => {
    for (const s of [
      "pzry9x0s0muk",
      "1pzry9x0s0muk",
      "x1b4n0q5v",
      "li1dgmt3",
      "de1lg7wt\xff",
      "A1G7SGD8",
      "10a06t8",
      "1qzzfhee",
      "a12UEL5L",
    ]) {
      expect(() => bech32Decode(s), s).toThrow();
    }
  });

  it("round-trips random data and detects every single-character change", () => {
    for (let len = 0; len < 70; len += 7) {
      const data = randomBytes(len);
      const text = bech32Encode("age", data);
      expect(bech32Decode(text).data.equals(data)).toBe(true);
      expect(bech32Decode(text.toUpperCase()).data.equals(data)).toBe(true);
    }
    const { recipient } = generateIdentity();
    expect(recipient).toHaveLength(62);
    for (let i = 4; i < recipient.length; i++) {
      const other = recipient[i] === "q" ? "p" : "q";
      expect(() => bech32Decode(recipient.slice(0, i) + other + recipient.slice(i + 1))).toThrow(
        /checksum/,
      );
    }
  });
});

describe("keys", () => {
  it("generates identities and recipients in age's format", () => {
    const { identity, recipient } = generateIdentity();
    expect(identity).toMatch(/^AGE-SECRET-KEY-1[02-9ACDEFGHJKLMNPQRSTUVWXYZ]{58}$/);
    expect(recipient).toMatch(/^age1[02-9ac-hj-np-z]{58}$/);
    expect(identityToRecipient(identity)).toBe(recipient);
    expect(identityToRecipient(identity.toLowerCase())).toBe(recipient);
  });

  it("reads age-keygen output, and age-keygen agrees with our public key", async () => {
    const parsed = parseIdentityFile(cli.text);
    expect(parsed.map((i) => i.recipient)).toEqual([cli.recipient]);
    const ours = execFileSync("age-keygen", ["-y", mine.file]).toString().trim();
    expect(ours).toBe(mine.recipient);
    const text = await readFile(mine.file, "utf8");
    expect(text).toMatch(/^# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n# public key: age1\S+\n/);
    expect(text.trimEnd().split("\n").pop()).toBe(mine.identity);
  });

  it("ignores comments, blank lines and CRLF; keeps several identities", () => {
    const a = generateIdentity();
    const text = `# one\n\n${a.identity}\r\n   \n# two\n${mine.identity}\n`;
    expect(parseIdentityFile(text).map((i) => i.recipient)).toEqual([a.recipient, mine.recipient]);
  });

  it("gives clear parse errors that never contain key material", () => {
    const bad =
      mine.identity.slice(0, 30) +
      (mine.identity[30] === "Q" ? "P" : "Q") +
      mine.identity.slice(31);
    for (const [text, pattern] of [
      [`# c\n${bad}\n`, /line 2 of keys\.txt is not a valid age identity: bech32 checksum/],
      [`${mine.recipient}\n`, /line 1 of keys\.txt is a recipient \(public key\), not an identity/],
      ["# only a comment\n", /keys\.txt contains no age identity/],
      ["hello\n", /line 1 of keys\.txt is not an age identity/],
    ] as const) {
      let error: unknown;
      try {
        parseIdentityFile(text, "keys.txt");
      } catch (e) {
        error = e;
      }
      expect(isLifeboatError(error, "KEY_INVALID")).toBe(true);
      expect((error as Error).message).toMatch(pattern);
      expect((error as Error).message).not.toContain(bad.slice(16, 40));
    }
    expect(() => parseRecipient(mine.identity)).toThrow(/secret identity was given/);
    try {
      parseRecipient(mine.identity);
    } catch (e) {
      expect((e as Error).message).not.toContain(mine.identity.slice(16));
    }
    expect(() => parseRecipient(mine.recipient.slice(0, -1) + "x")).toThrow(/not a valid/);
    expect(() => parseRecipient("ssh-ed25519 AAAA")).toThrow(/does not start with age1/);
  });

  it("AgeIdentity does not reveal its secret when printed", () => {
    const id = parseIdentity(mine.identity);
    const shown = `${String(id)} ${JSON.stringify(id)} ${inspect(id)}`;
    expect(shown).toContain(mine.recipient);
    expect(shown).not.toContain(mine.identity.slice(16, 40));
  });

  it("fingerprints recipients stably and case-insensitively", () => {
    const fp = recipientFingerprint(mine.recipient);
    expect(fp).toMatch(/^age1fp:[0-9a-f]{16}$/);
    expect(recipientFingerprint(mine.recipient.toUpperCase())).toBe(fp);
    expect(recipientFingerprint(cli.recipient)).not.toBe(fp);
  });

  it("writes identity files with mode 0600 and never overwrites", async () => {
    expect((await stat(mine.file)).mode & 0o777).toBe(0o600);
    const before = await readFile(mine.file, "utf8");
    const other = generateIdentity().identity;
    await expect(writeIdentityFile(mine.file, other)).rejects.toMatchObject({ code: "KEY_EXISTS" });
    expect(await readFile(mine.file, "utf8")).toBe(before);
    await expect(writeIdentityFile(join(dir, "bad.txt"), "nonsense")).rejects.toMatchObject({
      code: "KEY_INVALID",
    });
  });

  it("loads identity files with errors naming the file", async () => {
    expect((await loadIdentityFile(cli.file)).map((i) => i.recipient)).toEqual([cli.recipient]);
    const missing = join(dir, "missing.txt");
    await expect(loadIdentityFile(missing)).rejects.toMatchObject({
      code: "KEY_NOT_FOUND",
      message: expect.stringContaining(missing),
    });
    const broken = join(dir, "broken.txt");
    await writeFile(broken, "not a key\n");
    await expect(loadIdentityFile(broken)).rejects.toMatchObject({
      code: "KEY_INVALID",
      message: expect.stringContaining(`line 1 of identity file ${broken}`),
    });
  });
});

describe("header", () => {
  it("wraps bodies at 64 columns with a shorter (possibly empty) final line", () => {
    const fileKey = newFileKey();
    const stanzas = [0, 1, 47, 48, 49, 96, 200].map((n) => ({
      type: "test",
      args: ["a", "b+/="],
      body: randomBytes(n),
    }));
    const bytes = encodeHeader(stanzas, fileKey);
    const lines = bytes.toString("latin1").split("\n");
    expect(lines).toContain(""); // the 0- and 48-byte bodies end with an empty line
    expect(lines.every((l) => l.length <= 64 || l.startsWith("-"))).toBe(true);
    const parsed = parseHeader(bytes);
    expect(parsed.stanzas.map((s) => s.body.toString("hex"))).toEqual(
      stanzas.map((s) => s.body.toString("hex")),
    );
    expect(parsed.stanzas[0]!.args).toEqual(["a", "b+/="]);
  });

  it("rejects non-canonical encodings", () => {
    const good = encodeHeader([{ type: "t", args: [], body: randomBytes(48) }], newFileKey());
    const text = good.toString("latin1");
    const variants = [
      text.replace(/\n\n---/, "\n---"), // 64-column last line without the empty terminator
      text.replace(/^(-> t\n)(\S{64})\n/m, "$1$2A\n"), // 65 columns
      text.replace(/--- (\S+)/, "--- $1="), // padded MAC
      text.replace("-> t", "-> t "), // empty argument
      text.replace("-> t", "->  t"),
      // Same bytes, but spare bits set: the MAC must not have two spellings.
      text.replace(
        /(--- \S{42})(\S)/,
        (_m, head: string, last: string) => head + B64[B64.indexOf(last) + 1],
      ),
    ];
    for (const v of variants) {
      expect(v).not.toBe(text);
      expect(() => parseHeader(Buffer.from(v, "latin1")), JSON.stringify(v)).toThrow(/malformed/);
    }
  });
});

describe("age interoperability", () => {
  const sizes = [0, 1, K - 1, K, K + 1, 3 * K, 5 * 1024 * 1024 + 123];

  it.each(sizes)("age CLI decrypts what we encrypt (%i bytes)", async (size) => {
    const data = randomBytes(size);
    const out = await ageCli(
      ["-d", "-i", mine.file],
      [Readable.from(pieces(data, randomPieces)), createEncryptStream([mine.recipient])],
    );
    expect(out.equals(data)).toBe(true);
  });

  it.each(sizes)("we decrypt what the age CLI encrypts (%i bytes)", async (size) => {
    const data = randomBytes(size);
    const file = await ageCli(["-r", cli.recipient], [Readable.from([data])]);
    const ours = await encrypt(data, [cli.recipient]);
    // Same plaintext size, one X25519 recipient: the framing must agree byte for byte in length.
    expect(ours.length).toBe(file.length);
    expect(ours.length).toBe(
      headerLength(ours) + 16 + size + 16 * Math.max(1, Math.ceil(size / K)),
    );
    expect((await decrypt(file, ids())).equals(data)).toBe(true);
    if (size <= K + 1) expect((await decrypt(file, ids(), 1)).equals(data)).toBe(true);
  });

  it("skips other recipients' stanza types", async () => {
    const { publicKey } = generateKeyPairSync("ed25519");
    const raw = publicKey.export({ format: "jwk" }).x!;
    const str = (b: Buffer) => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(b.length);
      return Buffer.concat([len, b]);
    };
    const blob = Buffer.concat([
      str(Buffer.from("ssh-ed25519")),
      str(Buffer.from(raw, "base64url")),
    ]);
    const ssh = `ssh-ed25519 ${blob.toString("base64")}`;
    const data = randomBytes(1000);
    const file = await ageCli(["-r", ssh, "-r", mine.recipient], [Readable.from([data])]);
    expect(file.toString("latin1", 0, headerLength(file))).toContain("-> ssh-ed25519 ");
    expect((await decrypt(file, [parseIdentity(mine.identity)])).equals(data)).toBe(true);
  });
});

describe("encryption and decryption", () => {
  it("round-trips with 1-byte writes and with one huge write", async () => {
    const data = randomBytes(K + 1);
    const enc = await encrypt(data, [mine.recipient], 1);
    expect((await decrypt(enc, ids(), 1)).equals(data)).toBe(true);
    const big = randomBytes(7 * K + 5);
    const bigEnc = await encrypt(big, [mine.recipient], big.length);
    expect((await decrypt(bigEnc, ids(), bigEnc.length)).equals(big)).toBe(true);
  });

  it("encrypts to several recipients, each identity alone decrypts", async () => {
    const third = generateIdentity();
    const data = randomBytes(2 * K + 10);
    const file = await encrypt(data, [mine.recipient, cli.recipient, third.recipient]);
    for (const id of [mine.identity, third.identity]) {
      expect((await decrypt(file, [parseIdentity(id)])).equals(data)).toBe(true);
    }
    expect((await decrypt(file, parseIdentityFile(cli.text))).equals(data)).toBe(true);
    const viaCli = await ageCli(["-d", "-i", cli.file], [Readable.from([file])]);
    expect(viaCli.equals(data)).toBe(true);
  });

  it("rejects a wrong identity without emitting anything", async () => {
    const file = await encrypt(randomBytes(100), [mine.recipient, cli.recipient]);
    const stranger = generateIdentity();
    const { error, out } = await decryptFails(
      file,
      [parseIdentity(stranger.identity)],
      "DECRYPT_FAILED",
    );
    expect(error.message).toMatch(/no identity matches the file's recipients/);
    expect(error.message).not.toContain(stranger.identity.slice(16));
    expect(out.length).toBe(0);
  });

  it("rejects a flipped bit anywhere in the header", async () => {
    const file = await encrypt(randomBytes(300), [mine.recipient]);
    const end = headerLength(file);
    for (let i = 0; i < end; i++) {
      const damaged = Buffer.from(file);
      damaged[i]! ^= 0x01;
      const { out } = await decryptFails(damaged, ids(), [
        "OBJECT_CORRUPT",
        "DECRYPT_FAILED",
        "OBJECT_TRUNCATED",
      ]);
      expect(out.length).toBe(0);
    }
    const macAt = file.indexOf("--- ") + 10;
    const damaged = Buffer.from(file);
    damaged[macAt] = damaged[macAt] === 0x41 ? 0x42 : 0x41;
    const { error } = await decryptFails(damaged, ids(), "OBJECT_CORRUPT");
    expect(error.message).toMatch(/header MAC mismatch/);
  });

  it("rejects a flipped byte anywhere in the payload and emits only verified chunks", async () => {
    const data = randomBytes(3 * K + 500);
    const file = await encrypt(data, [mine.recipient]);
    const start = headerLength(file);
    const positions = [start, start + 15, start + 16, start + 16 + K + 3, start + 16 + SEALED - 1];
    positions.push(start + 16 + SEALED + 7, start + 16 + 3 * SEALED + 2, file.length - 1);
    for (const at of positions) {
      const damaged = Buffer.from(file);
      damaged[at]! ^= 0x80;
      const { out } = await decryptFails(damaged, ids(), "OBJECT_CORRUPT");
      // Damage to the nonce breaks every chunk; otherwise the chunks before the damaged one pass.
      const chunk = at < start + 16 ? 0 : Math.floor((at - start - 16) / SEALED);
      expect(out.equals(data.subarray(0, chunk * K)), String(at)).toBe(true);
    }
  });

  it("rejects truncation at chunk boundaries and inside the header or nonce", async () => {
    const data = randomBytes(3 * K);
    const file = await encrypt(data, [mine.recipient]);
    const start = headerLength(file);
    const cases: [number, RegExp][] = [
      [0, /empty/],
      [10, /inside the age header/],
      [start - 1, /inside the age header/],
      [start, /before the age payload nonce/],
      [start + 15, /before the age payload nonce/],
      [start + 16, /no chunks/],
      [start + 16 + SEALED, /without its final chunk/],
      [start + 16 + 2 * SEALED, /without its final chunk/],
      [start + 16 + 2 * SEALED + 5, /inside age payload chunk 2/],
    ];
    for (const [cut, pattern] of cases) {
      const { error } = await decryptFails(file.subarray(0, cut), ids(), "OBJECT_TRUNCATED");
      expect(error.message, String(cut)).toMatch(pattern);
    }
    // A cut deeper inside a chunk cannot be told apart from damage to it (documented).
    const { error } = await decryptFails(
      file.subarray(0, start + 16 + SEALED + 1000),
      ids(),
      "OBJECT_CORRUPT",
    );
    expect(error.message).toMatch(/cut inside this chunk/);
    const short = await encrypt(randomBytes(2 * K + 9), [mine.recipient]);
    await decryptFails(
      short.subarray(0, headerLength(short) + 16 + 2 * SEALED),
      ids(),
      "OBJECT_TRUNCATED",
    );
  });

  it("rejects trailing data after the last chunk", async () => {
    for (const size of [0, 10, K, 2 * K]) {
      const file = await encrypt(randomBytes(size), [mine.recipient]);
      for (const extra of [randomBytes(1), randomBytes(100), randomBytes(SEALED + 3)]) {
        const { out } = await decryptFails(Buffer.concat([file, extra]), ids(), "OBJECT_CORRUPT");
        expect(out.length).toBeLessThanOrEqual(Math.max(0, size - K));
      }
    }
    const full = await encrypt(randomBytes(K), [mine.recipient]);
    const { error } = await decryptFails(
      Buffer.concat([full, Buffer.from("x")]),
      ids(),
      "OBJECT_CORRUPT",
    );
    expect(error.message).toMatch(/trailing data/);
  });

  it("rejects non-age input clearly and early", async () => {
    const armored = execFileSync("age", ["-a", "-r", mine.recipient], { input: "hi" });
    const cases: [Buffer, RegExp][] = [
      [randomBytes(10 * 1024 * 1024), /not an age-encrypted file/],
      [Buffer.from("hello world\n"), /not an age-encrypted file/],
      [armored, /ASCII-armored/],
      [Buffer.from("age-encryption.org/v2\n-> X 1\n"), /unsupported version/],
    ];
    for (const [input, pattern] of cases) {
      const { error } = await decryptFails(input, ids(), "OBJECT_CORRUPT");
      expect(error.message).toMatch(pattern);
    }
    const huge = Buffer.concat([
      Buffer.from("age-encryption.org/v1\n"),
      Buffer.alloc(2 << 20, 0x41),
    ]);
    const { error } = await decryptFails(huge, ids(), "OBJECT_CORRUPT");
    expect(error.message).toMatch(/larger than 1 MiB/);
  });

  it("rejects an empty final chunk after data, as age does", async () => {
    // Built by hand: our encoder never writes this shape.
    const fileKey = newFileKey();
    const nonce = randomBytes(16);
    const key = hkdf(fileKey, nonce, "payload");
    const seal = (counter: number, last: boolean, plain: Buffer) => {
      const iv = Buffer.alloc(12);
      iv.writeUIntBE(counter, 5, 6);
      iv[11] = last ? 1 : 0;
      const c = createCipheriv("chacha20-poly1305", key, iv, { authTagLength: 16 });
      return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
    };
    const header = encodeHeader(
      [wrapX25519(parseIdentity(mine.identity).publicKey, fileKey)],
      fileKey,
    );
    const data = randomBytes(K);
    const valid = Buffer.concat([header, nonce, seal(0, true, data)]);
    expect((await decrypt(valid, ids())).equals(data)).toBe(true);
    const file = Buffer.concat([
      header,
      nonce,
      seal(0, false, data),
      seal(1, true, Buffer.alloc(0)),
    ]);
    const { error } = await decryptFails(file, ids(), "OBJECT_CORRUPT");
    expect(error.message).toMatch(/empty final chunk/);
    await expect(ageCli(["-d", "-i", mine.file], [Readable.from([file])])).rejects.toThrow();
  });

  it("produces exactly one empty last chunk for empty input", async () => {
    const file = await encrypt(Buffer.alloc(0), [mine.recipient]);
    expect(file.length).toBe(headerLength(file) + 16 + 16);
    expect((await decrypt(file, ids())).length).toBe(0);
  });

  it("refuses to start without recipients or identities, or with a bad recipient", () => {
    expect(() => createEncryptStream([])).toThrow(/at least one/);
    expect(() => createDecryptStream([])).toThrow(/at least one/);
    expect(() => createEncryptStream(["age1nope"])).toThrow(/not a valid age recipient/);
  });
});
