// Fuzzing the submit route: mutated blueprints (./blueprint-mutations.ts) sent to a
// node's API by a few clients, answers compared with the ones the bodies deserve,
// worked out without the API (the same parsing and verification, in the route's order,
// against the versions the node should hold by then). Used by test/api/fuzz.test.ts
// (10,000 cases) and bench/hostile.ts (100,000).
import { ZoneError } from '../../lib/errors.ts';
import { STATUS_OF } from '../../api/errors.ts';
import { decodeBlueprintBytes, parseBlueprintText } from '../../blueprints/parse.ts';
import type { TrustPolicy } from '../../blueprints/policy.ts';
import type { Blueprint } from '../../blueprints/schema.ts';
import { verifyBlueprint } from '../../blueprints/verify.ts';
import { mutations, type Json } from './blueprint-mutations.ts';

interface NodeView {
  policy: TrustPolicy;
  nodeId: string;
  storedVersion(owner: string, name: string): number | null;
}

/** The status the route must answer, and the blueprint it stores on a 202. */
export function expectedVerdict(body: Buffer, format: 'json' | 'yaml', pathName: string, node: NodeView): { status: number; accepted?: Blueprint } {
  try {
    const value = parseBlueprintText(decodeBlueprintBytes(body), format);
    verifyBlueprint(value, { policy: node.policy, nodeId: node.nodeId, storedVersion: () => null, now: new Date() });
    if ((value as { name?: unknown }).name !== pathName) return { status: 400 };
    return { status: 202, accepted: verifyBlueprint(value, { ...node, now: new Date() }) };
  } catch (err) {
    if (err instanceof ZoneError) return { status: STATUS_OF[err.code] };
    throw err;
  }
}

function wrongAnswer(report: FuzzReport, what: string): void {
  report.wrongCount++;
  if (report.wrong.length < 20) report.wrong.push(what);
}

export interface FuzzReport {
  sent: number;
  seconds: number;
  statuses: Map<number, number>;
  /** Answers that differ from the expected one (at most 20 kept). */
  wrong: string[];
  wrongCount: number;
  /** `owner/name` -> version the node must hold now. */
  stored: Map<string, number>;
}

/**
 * Sends `cases` mutations of each client's seeds to `url`; client i puts to the path
 * name `${prefix}-${i}` only (so that its versions are checked in order).
 */
export async function fuzzSubmits(options: {
  url: string; node: Omit<NodeView, 'storedVersion'>; cases: number; seed: number; clients: number; prefix: string;
  seedsFor(pathName: string): Json[];
}): Promise<FuzzReport> {
  const { url, node, cases, seed, clients, prefix } = options;
  const report: FuzzReport = { sent: 0, seconds: 0, statuses: new Map(), wrong: [], wrongCount: 0, stored: new Map() };
  const started = performance.now();
  await Promise.all(Array.from({ length: clients }, async (_, client) => {
    const pathName = `${prefix}-${client}`;
    const next = mutations(options.seedsFor(pathName), seed + client);
    while (report.sent < cases) {
      report.sent++;
      const m = next();
      const res = await fetch(`${url}/v1/blueprints/${pathName}`, { method: 'PUT', headers: { 'content-type': m.type }, body: new Uint8Array(m.body) });
      const text = await res.text();
      report.statuses.set(res.status, (report.statuses.get(res.status) ?? 0) + 1);
      // Working the verdict out costs as much as the node's own work: it is done where
      // the answer could be wrong in a way that matters. A key shuffle of a signed seed
      // deserves acceptance unless stale; every acceptance must be deserved; any other
      // mutation breaks the syntax, the schema or a signature, and must get a 4xx.
      if (res.status !== 202 && !m.keepsSignatures) {
        if (res.status < 400 || res.status >= 500) wrongAnswer(report, `${m.what} (${m.type}): ${res.status} ${text.slice(0, 200)}, expected a 4xx`);
        continue;
      }
      const expected = expectedVerdict(m.body, m.type === 'application/json' ? 'json' : 'yaml', pathName, {
        ...node, storedVersion: (owner, name) => report.stored.get(`${owner}/${name}`) ?? null,
      });
      if (res.status !== expected.status) wrongAnswer(report, `${m.what} (${m.type}): ${res.status} ${text.slice(0, 200)}, expected ${expected.status}`);
      if (res.status === 202 && expected.accepted) report.stored.set(`${expected.accepted.owner}/${expected.accepted.name}`, expected.accepted.version);
    }
  }));
  report.seconds = (performance.now() - started) / 1000;
  return report;
}
