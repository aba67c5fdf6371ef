import { LifeboatError } from "../errors.js";
import { validatePrefix } from "./keys.js";

/** `bucket/prefix/` key prefix normalised: empty, or ending in `/`. */
export function normalisedPrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? "").replace(/^\/+|\/+$/g, "");
  return trimmed === "" ? "" : validatePrefix(`${trimmed}/`);
}

/** `s3://bucket/prefix/ (http://host:port)` — for messages; never credentials. */
export function s3Location(options: {
  bucket: string;
  prefix?: string | undefined;
  endpoint?: string | undefined;
}): string {
  let where = "";
  if (options.endpoint) {
    try {
      const url = new URL(options.endpoint);
      where = ` (${url.protocol}//${url.host})`; // never the user:password part
    } catch {
      throw new LifeboatError(
        "CONFIG_INVALID",
        `invalid S3 endpoint URL for bucket ${options.bucket}`,
      );
    }
  }
  return `s3://${options.bucket}/${normalisedPrefix(options.prefix)}${where}`;
}
