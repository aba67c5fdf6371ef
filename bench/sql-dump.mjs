// Deterministic pg_dump-like text (plain format: a preamble, DDL, then `COPY … FROM stdin;`
// blocks of tab-separated rows) for tests and benchmarks. It compresses like a real dump (zstd -3
// gets roughly 3-4x: repeated words, dates and JSON keys, but also ids, hashes, addresses and
// amounts that do not repeat) and is generated at a few hundred MB/s, never held in memory.
//
//   import { sqlDumpStream } from "./sql-dump.mjs";   // a Readable of exactly `bytes` bytes
//   node bench/sql-dump.mjs <bytes> [seed]             // to stdout; `sha256 <hex> <bytes>` on stderr
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { pathToFileURL } from "node:url";

const words = (text) => text.trim().split(/\s+/);
const FIRST = words(`olivia liam amelia noah isla oliver ava leo mia arthur ivy oscar freya
  george lily harry sophia jack grace muhammad ella theo evie finley florence charlie willow`);
const LAST = words(`smith jones taylor brown williams wilson johnson davies patel wright
  robinson wood thompson evans walker white roberts green hall thomas clarke jackson khan`);
const DOMAINS = words(`example.com mail.test fintech.io corp.example bank.test post.example`);
const COUNTRIES = words(`GB IE FR DE ES NL PL PT IT SE`);
const STATUSES = words(`active active active pending suspended closed`);
const ACTIONS = words(`login logout view_statement transfer.create transfer.approve
  card.freeze card.unfreeze profile.update kyc.upload password.reset payee.add`);
const AGENTS = [
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
  "okhttp/4.12.0",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15",
];
const KYC = words(`passport driving_licence national_id residence_permit`);
const BYTE_HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const PAD2 = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, "0"));
const PAD3 = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0"));
const DAY_MS = 86_400_000;
const START = Date.UTC(2024, 0, 1);

const PREAMBLE = `--
-- PostgreSQL database dump
--

-- Dumped from database version 16.4
-- Dumped by pg_dump version 16.4

SET statement_timeout = 0;
SET lock_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;

CREATE TABLE public.users (id bigint NOT NULL, email text NOT NULL, full_name text, country character(2), status text, balance numeric(14,2), created_at timestamp with time zone, profile jsonb);
CREATE TABLE public.activity_logs (id bigint NOT NULL, user_id bigint, action text, ip inet, user_agent text, request_id uuid, created_at timestamp with time zone);
CREATE TABLE public.kyc_verifications (id bigint NOT NULL, user_id bigint, document_type text, document_sha256 text, verified boolean, created_at timestamp with time zone);

`;

/** xorshift32: fast, deterministic, good enough to make text that is not trivially compressible. */
function random(seed) {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

function makeTables(next) {
  const pick = (list) => list[next() % list.length];
  const hex8 = () => {
    const v = next();
    return (
      BYTE_HEX[v & 255] +
      BYTE_HEX[(v >>> 8) & 255] +
      BYTE_HEX[(v >>> 16) & 255] +
      BYTE_HEX[v >>> 24]
    );
  };
  // `yyyy-mm-dd hh:mm:ss.mmm+00`, advancing ~1.7 s per row; the date part is cached per day.
  let day = -1;
  let date = "";
  const time = (id) => {
    const ms = id * 1731 + (next() % 1000);
    const d = Math.floor(ms / DAY_MS);
    if (d !== day) {
      day = d;
      date = new Date(START + d * DAY_MS).toISOString().slice(0, 10);
    }
    const inDay = ms - d * DAY_MS;
    const s = Math.floor(inDay / 1000);
    return `${date} ${PAD2[Math.floor(s / 3600)]}:${PAD2[Math.floor(s / 60) % 60]}:${PAD2[s % 60]}.${PAD3[inDay % 1000]}+00`;
  };
  const uuid = () => {
    const a = hex8();
    const b = hex8();
    const c = hex8();
    return `${a}-${b.slice(0, 4)}-4${b.slice(5)}-a${c.slice(1, 4)}-${c.slice(4)}${hex8()}`;
  };
  return [
    {
      head: "COPY public.users (id, email, full_name, country, status, balance, created_at, profile) FROM stdin;\n",
      row(id) {
        const first = pick(FIRST);
        const last = pick(LAST);
        const cents = next() % 10_000_000;
        return `${id}\t${first}.${last}${id % 977}@${pick(DOMAINS)}\t${first[0].toUpperCase()}${first.slice(1)} ${last[0].toUpperCase()}${last.slice(1)}\t${pick(COUNTRIES)}\t${pick(STATUSES)}\t${(cents / 100).toFixed(2)}\t${time(id)}\t{"plan": "${next() % 3 ? "standard" : "premium"}", "marketing": ${next() % 2 ? "true" : "false"}, "referrer": "${hex8()}"}\n`;
      },
    },
    {
      head: "COPY public.activity_logs (id, user_id, action, ip, user_agent, request_id, created_at) FROM stdin;\n",
      row(id) {
        const ip = `10.${next() % 256}.${next() % 256}.${next() % 256}`;
        return `${id}\t${next() % 500_000}\t${pick(ACTIONS)}\t${ip}\t${pick(AGENTS)}\t${uuid()}\t${time(id)}\n`;
      },
    },
    {
      head: "COPY public.kyc_verifications (id, user_id, document_type, document_sha256, verified, created_at) FROM stdin;\n",
      row(id) {
        return `${id}\t${next() % 500_000}\t${pick(KYC)}\t${hex8()}${hex8()}${hex8()}${hex8()}${hex8()}${hex8()}${hex8()}${hex8()}\t${next() % 5 ? "t" : "f"}\t${time(id)}\n`;
      },
    },
  ];
}

/** A Readable of exactly `bytes` bytes of dump text; the same seed always gives the same bytes. */
export function sqlDumpStream({ bytes, seed = 1, chunkSize = 256 * 1024, rowsPerBlock = 25_000 }) {
  const next = random(seed);
  const tables = makeTables(next);
  let remaining = bytes;
  let carry = Buffer.from(PREAMBLE, "latin1");
  let table = 0;
  let rowInBlock = -1;
  let id = 1;
  const nextLine = () => {
    const current = tables[table];
    if (rowInBlock < 0) {
      rowInBlock = 0;
      return current.head;
    }
    if (rowInBlock === rowsPerBlock) {
      rowInBlock = -1;
      table = (table + 1) % tables.length;
      return "\\.\n\n";
    }
    rowInBlock++;
    return current.row(id++);
  };
  return new Readable({
    highWaterMark: chunkSize,
    read() {
      while (remaining > 0) {
        // Rows are written straight into the chunk: no big strings to flatten, little garbage.
        const chunk = Buffer.allocUnsafe(Math.min(remaining, chunkSize));
        let fill = carry.copy(chunk);
        carry = carry.subarray(fill);
        while (fill < chunk.length) {
          const line = nextLine();
          const written = chunk.latin1Write(line, fill);
          fill += written;
          if (written < line.length) carry = Buffer.from(line.slice(written), "latin1");
        }
        remaining -= chunk.length;
        if (!this.push(chunk)) return;
      }
      this.push(null);
    },
  });
}

/** Passes bytes through and resolves `digest` (sha256 hex and byte count) at the end. */
export function hashTap() {
  const hash = createHash("sha256");
  let count = 0;
  let resolve;
  const digest = new Promise((r) => (resolve = r));
  const tap = new Transform({
    transform(chunk, _encoding, callback) {
      hash.update(chunk);
      count += chunk.length;
      callback(null, chunk);
    },
    flush(callback) {
      resolve({ sha256: hash.digest("hex"), bytes: count });
      callback();
    },
  });
  return { tap, digest };
}

/**
 * The first `periodBytes` of the dump, then the same bytes again until `bytes` (cheap to produce
 * in bulk; with a period far above zstd's window the compressor works as hard as on fresh text).
 */
export async function* repeatedSqlDump({ bytes, seed = 1, periodBytes = 64 * 1024 * 1024 }) {
  const chunks = [];
  let remaining = bytes;
  for await (const chunk of sqlDumpStream({ bytes: Math.min(bytes, periodBytes), seed })) {
    chunks.push(chunk);
    remaining -= chunk.length;
    yield chunk;
  }
  while (remaining > 0) {
    for (const chunk of chunks) {
      if (remaining <= 0) break;
      const piece = chunk.length <= remaining ? chunk : chunk.subarray(0, remaining);
      remaining -= piece.length;
      yield piece;
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const [bytes, seed = 1, periodMiB] = process.argv.slice(2).map(Number);
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    process.stderr.write("usage: node bench/sql-dump.mjs <bytes> [seed] [repeat-period-MiB]\n");
    process.exit(2);
  }
  const source = periodMiB
    ? Readable.from(repeatedSqlDump({ bytes, seed, periodBytes: periodMiB * 1024 * 1024 }))
    : sqlDumpStream({ bytes, seed });
  const { tap, digest } = hashTap();
  await pipeline(source, tap, process.stdout);
  const { sha256, bytes: count } = await digest;
  process.stderr.write(`sha256 ${sha256} ${count}\n`);
}
