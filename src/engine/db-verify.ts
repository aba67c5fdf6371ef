import { LifeboatError, toLifeboatError } from "../errors.js";
import { dumpTool } from "../postgres/dump.js";
import { archiveToc, isDirectoryArchive } from "./db-archive.js";
import { registerKindVerifier, type ObjectCheck } from "../repository/verify.js";
import { DB_KIND, DUMP_OBJECT, GLOBALS_OBJECT, dbDetails } from "./database.js";

/**
 * Beyond checksums, a db backup is only good if pg_restore can read it: list the archive's
 * table of contents and check it has the tables the backup recorded. Globals must be SQL.
 */
registerKindVerifier(DB_KIND, async ({ repository, manifest, identities }) => {
  const checks: ObjectCheck[] = [];
  const details = dbDetails(manifest.details);
  const dump =
    manifest.objects.find((o) => o.name === DUMP_OBJECT) ??
    (isDirectoryArchive(manifest)
      ? manifest.objects.find((o) => o.name === "dump/toc.dat")
      : undefined);
  if (!dump)
    return [
      {
        name: "pg_restore --list",
        key: manifest.id,
        ok: false,
        code: "MANIFEST_CORRUPT",
        problem: "no dump object",
      },
    ];
  try {
    const pgRestore = dumpTool("pg_restore", details.server?.major ?? 0);
    const toc = await archiveToc({ repository, manifest, identities }, pgRestore);
    const entries = toc.split("\n").filter((line) => /^\d+;/.test(line));
    const missing = (details.tables ?? [])
      .filter((t) => t.exists)
      .filter(
        (t) =>
          !entries.some((line) =>
            new RegExp(`\\bTABLE DATA \\S+ ${escape(t.table.split(".").pop()!)}\\b`).test(line),
          ),
      );
    if (entries.length === 0)
      throw new LifeboatError("OBJECT_CORRUPT", "pg_restore lists no entries");
    checks.push(
      missing.length === 0
        ? { name: "pg_restore --list", key: dump.key, ok: true }
        : {
            name: "pg_restore --list",
            key: dump.key,
            ok: false,
            code: "OBJECT_CORRUPT",
            problem: `archive lacks data for ${missing.map((t) => t.table).join(", ")}`,
          },
    );
  } catch (error) {
    const failure = toLifeboatError(error);
    checks.push({
      name: "pg_restore --list",
      key: dump.key,
      ok: false,
      code: failure.code,
      problem: failure.message,
    });
  }
  const globals = manifest.objects.find((o) => o.name === GLOBALS_OBJECT);
  if (globals) {
    const head: Buffer[] = [];
    for await (const chunk of await repository.openObject(manifest, globals, { identities }))
      head.push(chunk as Buffer);
    const text = Buffer.concat(head).toString("utf8");
    const ok = /PostgreSQL database cluster dump/.test(text);
    checks.push(
      ok
        ? { name: "globals script", key: globals.key, ok }
        : {
            name: "globals script",
            key: globals.key,
            ok,
            code: "OBJECT_CORRUPT",
            problem: "not a pg_dumpall script",
          },
    );
  }
  return checks;
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
