import { afterAll, beforeAll } from "vitest";
import {
  startThrowawayCluster,
  type ThrowawayCluster,
  type ThrowawayClusterOptions,
} from "../../src/postgres/cluster.js";

/** Durability buys nothing in a test that throws the cluster away; callers can turn fsync back on. */
export const FAST_TEST_SETTINGS: Record<string, string> = { fsync: "off" };

/**
 * One throwaway cluster for the enclosing describe block (or file): started in beforeAll,
 * destroyed in afterAll. Returns a getter because the cluster exists only once beforeAll ran.
 */
export function withCluster(
  settings: Record<string, string> = {},
  options: Omit<ThrowawayClusterOptions, "settings"> = {},
): () => ThrowawayCluster {
  let cluster: ThrowawayCluster | undefined;
  beforeAll(async () => {
    cluster = await startThrowawayCluster({
      ...options,
      settings: { ...FAST_TEST_SETTINGS, ...settings },
    });
  });
  afterAll(async () => {
    await cluster?.destroy();
    cluster = undefined;
  });
  return () => {
    if (!cluster) throw new Error("withCluster: the cluster is available only inside tests/hooks");
    return cluster;
  };
}
