/**
 * BIP-173 bech32 (not bech32m: age predates it). age strings are short (62 and 74 characters) but
 * the format itself sets no length limit, so neither do we.
 *
 * Errors never echo the input: the same code decodes secret keys.
 */

const CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3] as const;
const CHARSET_REV = new Map([...CHARSET].map((c, i) => [c, i]));

export class Bech32Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Bech32Error";
  }
}

function polymod(values: readonly number[]): number {
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) {
      if ((top >>> i) & 1) chk ^= GENERATOR[i]!;
    }
  }
  return chk >>> 0;
}

function hrpExpand(hrp: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < hrp.length; i++) out.push(hrp.charCodeAt(i) >> 5);
  out.push(0);
  for (let i = 0; i < hrp.length; i++) out.push(hrp.charCodeAt(i) & 31);
  return out;
}

function convertBits(data: ArrayLike<number>, from: number, to: number, pad: boolean): number[] {
  let acc = 0;
  let bits = 0;
  const out: number[] = [];
  const maxv = (1 << to) - 1;
  for (let i = 0; i < data.length; i++) {
    acc = (acc << from) | data[i]!;
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push((acc >> bits) & maxv);
    }
    acc &= (1 << bits) - 1;
  }
  if (pad) {
    if (bits > 0) out.push((acc << (to - bits)) & maxv);
  } else if (bits >= from || acc !== 0) {
    // Leftover bits must be fewer than one input group and zero, or two strings would decode alike.
    throw new Bech32Error("invalid padding in bech32 data");
  }
  return out;
}

/** Encodes with a lower-case result; callers upper-case it themselves where a format wants that. */
export function bech32Encode(hrp: string, data: Uint8Array): string {
  const lowerHrp = hrp.toLowerCase();
  if (lowerHrp.length === 0) throw new Bech32Error("empty bech32 human-readable part");
  for (let i = 0; i < lowerHrp.length; i++) {
    const c = lowerHrp.charCodeAt(i);
    if (c < 33 || c > 126) throw new Bech32Error("invalid character in bech32 human-readable part");
  }
  const words = convertBits(data, 8, 5, true);
  const mod = polymod([...hrpExpand(lowerHrp), ...words, 0, 0, 0, 0, 0, 0]) ^ 1;
  let out = lowerHrp + "1";
  for (const w of words) out += CHARSET[w];
  for (let i = 0; i < 6; i++) out += CHARSET[(mod >>> (5 * (5 - i))) & 31];
  return out;
}

/** Returns the lower-cased human-readable part and the decoded bytes. */
export function bech32Decode(text: string): { hrp: string; data: Buffer } {
  let hasLower = false;
  let hasUpper = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 33 || c > 126) throw new Bech32Error("invalid character in bech32 string");
    if (c >= 97 && c <= 122) hasLower = true;
    if (c >= 65 && c <= 90) hasUpper = true;
  }
  if (hasLower && hasUpper) throw new Bech32Error("bech32 string mixes upper and lower case");
  const lower = text.toLowerCase();
  const sep = lower.lastIndexOf("1");
  if (sep < 1) throw new Bech32Error("bech32 string has no human-readable part");
  if (sep + 7 > lower.length) throw new Bech32Error("bech32 string is too short");
  const hrp = lower.slice(0, sep);
  const words: number[] = [];
  for (const c of lower.slice(sep + 1)) {
    const v = CHARSET_REV.get(c);
    if (v === undefined) throw new Bech32Error("invalid character in bech32 data");
    words.push(v);
  }
  if (polymod([...hrpExpand(hrp), ...words]) !== 1) {
    throw new Bech32Error("bech32 checksum mismatch (a character is mistyped or missing)");
  }
  return { hrp, data: Buffer.from(convertBits(words.slice(0, -6), 5, 8, false)) };
}
