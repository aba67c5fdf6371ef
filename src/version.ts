import { createRequire } from "node:module";
import { hostname } from "node:os";

const pkg = createRequire(import.meta.url)("../package.json") as { name: string; version: string };

export const TOOL = { name: pkg.name, version: pkg.version, node: process.version } as const;

export function hostName(): string {
  return hostname();
}
