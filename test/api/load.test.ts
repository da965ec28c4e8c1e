import t from 'tap';
import { waitFor } from '../helpers/wait.ts';
import { startNode, box } from './node.ts';

const CLIENTS = 50;
const DURATION_MS = 10_000;

t.test('50 clients for 10 s: reads, valid and invalid blueprints; no 5xx, every invalid one refused, every valid one applied', async (t) => {
  const n = await startNode(t, { rateLimit: false });
  const statuses = new Map<string, number>();
  const count = (what: string, status: number) => statuses.set(`${what} ${status}`, (statuses.get(`${what} ${status}`) ?? 0) + 1);
  const latest = new Map<string, number>();
  const deadline = Date.now() + DURATION_MS;

  async function client(i: number): Promise<void> {
    const name = `load-${i}`;
    let version = 0;
    for (let round = 0; Date.now() < deadline; round++) {
      let kind: string;
      let res: Response;
      switch (round % 5) {
        case 0: { // a valid new version
          version++;
          const bp = n.sign({ name, version, workloads: [box('w', { resources: { cpus: 0.01, memory: '4Mi' }, command: ['sh', '-c', `echo ${version}`] })] });
          res = await fetch(`${n.url}/v1/blueprints/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(bp) });
          kind = 'valid';
          if (res.status === 202) latest.set(name, version);
          break;
        }
        case 1: { // invalid: tampered, replayed, or malformed
          const bad = [
            { ...n.sign({ name, version: version + 1 }), version: version + 2 },
            n.sign({ name, version: Math.max(version, 1) }),
            { name, version: 'one' },
          ][round % 3];
          res = await fetch(`${n.url}/v1/blueprints/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(bad) });
          kind = 'invalid';
          break;
        }
        default:
          res = await fetch(`${n.url}${['/v1/blueprints', `/v1/blueprints/${name}`, '/v1/node'][round % 3]}`);
          kind = 'read';
      }
      await res.arrayBuffer();
      count(kind, res.status);
    }
  }

  await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i)));
  t.comment([...statuses].map(([k, v]) => `${k}: ${v}`).join(', '));
  const byStatus = [...statuses];
  t.same(byStatus.filter(([k]) => Number(k.split(' ')[1]) >= 500), [], 'no 5xx');
  t.same(byStatus.filter(([k]) => k.startsWith('valid') && !k.endsWith(' 202')), [], 'every valid blueprint accepted');
  t.same(byStatus.filter(([k]) => k.startsWith('invalid') && !/ 4(00|01|09)$/.test(k)), [], 'every invalid blueprint refused');
  t.same(byStatus.filter(([k]) => k.startsWith('read') && !k.endsWith(' 200') && !k.endsWith(' 404')), [], 'reads answered');
  t.equal(latest.size, CLIENTS, 'every client applied something');
  for (const [name, version] of latest) t.equal(n.appliance.getBlueprint(name)?.version, version, `${name} is at v${version}`);
  await waitFor(() => n.appliance.listBlueprints().every((b) => b.workloads.length === 1 && b.workloads[0]!.state === 'running'), { timeoutMs: 30_000, what: 'every workload running' });
});
