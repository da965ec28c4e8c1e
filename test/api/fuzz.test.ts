// 10,000 mutated blueprints through the real API of a real appliance (real store and
// trust policy). The driver is the fake one on purpose: what is fuzzed is the front
// door (body limits, parse workers, verification, the store's versions), and accepted
// blueprints only need to be stored, not run. bench/hostile.ts runs 100,000.
import t from 'tap';
import { fuzzSubmits } from '../helpers/fuzz-submit.ts';
import { fuzzSeeds } from '../helpers/blueprint-mutations.ts';
import { startNode } from './node.ts';

const CASES = Number(process.env.ZONE_FUZZ_CASES ?? 10_000);
const SEED = Number(process.env.ZONE_FUZZ_SEED ?? Date.now() % 2 ** 31);

t.test(`${CASES} mutated blueprints: no 5xx, every answer the one the blueprint deserves, nothing stored unless valid and signed`, async (t) => {
  const n = await startNode(t, { rateLimit: false });
  const report = await fuzzSubmits({
    url: n.url, node: n.appliance.verificationContext(), cases: CASES, seed: SEED, clients: 8, prefix: 'fuzz',
    seedsFor: (name) => fuzzSeeds(name, (bp) => n.sign(bp)),
  });
  t.comment(`${report.sent} mutated blueprints (seed ${SEED}) in ${report.seconds.toFixed(1)} s; statuses ${JSON.stringify(Object.fromEntries(report.statuses))}`);
  t.ok(report.sent >= CASES, `${report.sent} sent`);
  t.same([...report.statuses.keys()].filter((s) => s >= 500), [], 'no 5xx');
  t.same(report.wrong, [], `every answer as expected (${report.wrongCount} not)`);
  t.ok((report.statuses.get(202) ?? 0) > 0, 'some mutations (key shuffles of signed blueprints) were valid and accepted');
  t.same(
    n.appliance.listBlueprints().map((b) => `${b.owner}/${b.name}@${b.version}`).sort(),
    [...report.stored].map(([key, version]) => `${key}@${version}`).sort(),
    'the node holds exactly the accepted versions',
  );
  t.equal((await fetch(`${n.url}/healthz`)).status, 200, 'the node still serves');
});
