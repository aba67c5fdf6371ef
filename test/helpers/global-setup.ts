// Vitest globalSetup: make sure a real S3 server (Ceph radosgw, see scripts/services.sh) is
// available for the test run and publish its coordinates as LIFEBOAT_TEST_S3_* variables.
//
// Order of preference:
//   1. LIFEBOAT_TEST_S3_ENDPOINT already in the environment (a server of your own);
//   2. the instance of scripts/services.sh (<services dir>/s3.env) if it runs;
//   3. start it with `scripts/services.sh start --lease <pid>`; teardown releases the lease,
//      which stops the services once no other test run uses them (only if a test run
//      started them: services started by hand or by .ci/run are left running).
//
// globalSetup runs in the main vitest process before the pool forks its workers, and vitest
// builds the workers' environment from process.env when it starts them, so setting
// process.env here is what makes the variables visible to tests (also with pool: "forks").
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const servicesScript = path.join(repoRoot, "scripts", "services.sh");
const servicesDir = process.env.LIFEBOAT_SERVICES_DIR ?? path.join(repoRoot, ".services");
const envFile = path.join(servicesDir, "s3.env");

const DEFAULTS = {
  LIFEBOAT_TEST_S3_ACCESS_KEY: "lifeboat-test",
  LIFEBOAT_TEST_S3_SECRET_KEY: "lifeboat-test-secret",
  LIFEBOAT_TEST_S3_REGION: "default",
} as const;

const HOW_TO_FIX =
  "Run the whole suite through .ci/run (installs the Ceph packages and starts the services), " +
  "or install them with `apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw curl` " +
  "and run `bash scripts/services.sh start`; or point LIFEBOAT_TEST_S3_ENDPOINT (plus " +
  "LIFEBOAT_TEST_S3_ACCESS_KEY/SECRET_KEY/REGION) at an S3 server of your own.";

/** Any HTTP response (even 403) means an S3 server is serving requests there. */
async function answers(endpoint: string, timeoutMs = 3000): Promise<boolean> {
  try {
    const response = await fetch(endpoint, { signal: AbortSignal.timeout(timeoutMs) });
    await response.body?.cancel();
    return true;
  } catch {
    return false;
  }
}

async function readEnvFile(file: string): Promise<Record<string, string> | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined;
  }
  const vars: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const match = /^(LIFEBOAT_TEST_S3_[A-Z_]+)=(.*)$/.exec(line.trim());
    if (match?.[1] !== undefined && match[2] !== undefined) vars[match[1]] = match[2];
  }
  return vars.LIFEBOAT_TEST_S3_ENDPOINT ? vars : undefined;
}

function runServices(...args: string[]): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    // The script redirects the daemons' stdio to log files, so it returns once they run.
    execFile(
      "bash",
      [servicesScript, ...args],
      { cwd: repoRoot, timeout: 180_000, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        resolve({ ok: !error, output: `${stdout}${stderr}`.trim() });
      },
    );
  });
}

function publish(vars: Record<string, string | undefined>): void {
  for (const [name, fallback] of Object.entries(DEFAULTS)) {
    process.env[name] = vars[name] || fallback;
  }
  process.env.LIFEBOAT_TEST_S3_ENDPOINT = vars.LIFEBOAT_TEST_S3_ENDPOINT;
}

export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  // 1. Given by the environment.
  const given = process.env.LIFEBOAT_TEST_S3_ENDPOINT;
  if (given) {
    if (!(await answers(given))) {
      throw new Error(
        `LIFEBOAT_TEST_S3_ENDPOINT=${given} does not answer HTTP requests. ${HOW_TO_FIX}`,
      );
    }
    publish({ ...process.env });
    return undefined;
  }

  // 2./3. Use the running instance, or start one. Either way this run takes a lease on it:
  // concurrent test runs share one instance, and the last run to finish stops it, but only
  // if a test run started it (a plain `scripts/services.sh start` keeps it running).
  const lease = String(process.pid);
  const started = await runServices("start", "--lease", lease);
  const vars = await readEnvFile(envFile);
  if (!started.ok || !vars?.LIFEBOAT_TEST_S3_ENDPOINT) {
    // Not ours to manage (e.g. started from another PID namespace) but answering: use it.
    if (vars?.LIFEBOAT_TEST_S3_ENDPOINT && (await answers(vars.LIFEBOAT_TEST_S3_ENDPOINT))) {
      publish(vars);
      return undefined;
    }
    throw new Error(
      `Could not start the S3 test server (scripts/services.sh start).\n${started.output}\n${HOW_TO_FIX}`,
    );
  }
  publish(vars);
  return async () => {
    const released = await runServices("release", lease);
    if (!released.ok) console.error(`scripts/services.sh release failed:\n${released.output}`);
  };
}
