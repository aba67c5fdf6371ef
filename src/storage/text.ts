import { Readable } from "node:stream";
import { LifeboatError } from "../errors.js";
import type { Storage } from "./types.js";

/** Reads a small document (config, manifest, lock) whole; refuses anything larger than `limit`. */
export async function readSmall(storage: Storage, key: string, limit = 64 << 20): Promise<string> {
  const stream = await storage.get(key);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += (chunk as Buffer).length;
    if (total > limit) {
      stream.destroy();
      throw new LifeboatError(
        "REPO_FORMAT",
        `${storage.location}/${key} is larger than ${limit} bytes`,
      );
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

export async function writeSmall(storage: Storage, key: string, text: string): Promise<void> {
  const bytes = Buffer.from(text, "utf8");
  await storage.put(
    key,
    { open: () => Readable.from([bytes]), size: bytes.length },
    { contentType: "application/json" },
  );
}
