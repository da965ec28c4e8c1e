import t from 'tap';
import { stringify } from 'yaml';
import { sealSecret } from '../../blueprints/seal.ts';
import { waitFor } from '../helpers/wait.ts';
import { box, call, startNode } from './node.ts';

const CLEAR = 'clear-secret-7f3a91c2';
const PLAIN_ENV = 'plain-env-value-52e8';

t.test('no secret value appears in any response, event, metric or log line', async (t) => {
  const n = await startNode(t);
  const { id, box: boxKey } = n.appliance.identity;
  const sealed = sealSecret(CLEAR, boxKey.publicKey, { owner: n.operator.publicKey, node: id, blueprint: 'sec', field: 'workloads/a/env/TOKEN' });
  const env = { TOKEN: sealed, PLAIN: PLAIN_ENV };
  const texts: string[] = [];
  const record = async (p: Promise<Awaited<ReturnType<typeof call>>>) => {
    const res = await p;
    texts.push(res.text, JSON.stringify([...res.headers]));
    return res;
  };
  const bp = n.sign({ name: 'sec', version: 1, workloads: [box('a', { env })] });
  t.equal((await record(call(`${n.url}/v1/blueprints/sec`, { method: 'PUT', body: bp }))).status, 202);
  await waitFor(() => n.appliance.getBlueprint('sec')?.workloads[0]?.state === 'running', { timeoutMs: 5000, what: 'running' });
  // Refusals that carry the secret in their body: tampered, replayed, invalid, as YAML.
  await record(call(`${n.url}/v1/blueprints/sec`, { method: 'PUT', body: { ...bp, version: 2 } }));
  await record(call(`${n.url}/v1/blueprints/sec`, { method: 'PUT', body: bp }));
  await record(call(`${n.url}/v1/blueprints/sec`, { method: 'PUT', body: { ...bp, workloads: [{ ...bp.workloads![0], env: { 'BAD NAME': sealed, X: CLEAR } }] } }));
  await record(call(`${n.url}/v1/blueprints/sec`, { method: 'PUT', type: 'application/yaml', text: stringify({ ...bp, version: 'x', secret: CLEAR }) }));
  await record(call(`${n.url}/v1/blueprints/sec`, { method: 'PUT', text: `{"name":"sec","x":"${CLEAR}"` }));
  for (const path of ['/v1/node', '/v1/blueprints', '/v1/blueprints/sec', '/v1/events?follow=false', '/v1/blueprints/sec/workloads/a/logs', '/metrics', '/docs']) {
    await record(call(`${n.url}${path}`));
  }
  const everything = texts.join('\n') + n.log();
  t.ok(n.log().length > 0, 'the logs were captured');
  for (const secret of [CLEAR, PLAIN_ENV, sealed.slice(10, 50)]) {
    t.notOk(everything.includes(secret), `${secret.slice(0, 12)}... appears nowhere`);
  }
});
