// The order of a rollout (zone upgrade --canary N --then all): the canaries first, one
// wave, then the rest in waves of `batch`. Pure: the command runs the waves.

/** The waves of nodes to upgrade, in order; the first holds the canaries when there are any. */
export function rolloutWaves<T>(nodes: readonly T[], canary: number, batch: number): T[][] {
  const waves: T[][] = [];
  const first = Math.min(canary, nodes.length);
  if (first > 0) waves.push(nodes.slice(0, first));
  for (let i = first; i < nodes.length; i += batch) waves.push(nodes.slice(i, i + batch));
  return waves;
}
