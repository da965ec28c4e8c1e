// The API's parse pool: verdicts come back from the worker threads with their code and
// field, and the pool's bounds (queue, time) answer 429 and 503 instead of waiting.
import t from 'tap';
import { ZoneError } from '../../../lib/errors.ts';
import { createParsePool } from '../../../api/parsing/pool.ts';
import { generateSigningKeyPair } from '../../../lib/ed25519.ts';
import type { Blueprint } from '../../../blueprints/schema.ts';
import { signBlueprint } from '../../../blueprints/sign.ts';
import { HOSTILE_BODIES } from '../../helpers/hostile-bodies.ts';

const operator = generateSigningKeyPair();
const verification = { policy: { signers: [{ key: operator.publicKey, weight: 1 }], threshold: 1 }, nodeId: 'node1' };
const signed = signBlueprint({ name: 'web', version: 1, owner: operator.publicKey, node: 'node1', workloads: [{ name: 'a', kind: 'container', image: 'zone/busybox' }] } as Blueprint, operator.secretKey);
const flow = Buffer.from(HOSTILE_BODIES.find((h) => h.what === 'a 1 MiB flow sequence')!.body);

async function refusal(promise: Promise<unknown>): Promise<ZoneError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ZoneError) return err;
    throw err;
  }
  throw new Error('not refused');
}

t.test('a signed blueprint comes back as its value; a refusal keeps its code, message and field', async (t) => {
  const pool = createParsePool(verification, { threads: 1 });
  t.teardown(() => pool.close());
  t.same(await pool.parse(Buffer.from(JSON.stringify(signed)), 'json'), signed);
  const tampered = await refusal(pool.parse(Buffer.from(JSON.stringify({ ...signed, version: 2 })), 'json'));
  t.match(tampered, { code: 'SIGNATURE', field: '/signatures/0/sig', message: /does not verify/ });
  const untrusted = signBlueprint({ ...signed, signatures: [] }, generateSigningKeyPair().secretKey);
  t.match(await refusal(pool.parse(Buffer.from(JSON.stringify(untrusted)), 'json')), { code: 'POLICY' }, 'the trust policy is checked in the worker');
  t.match(await refusal(pool.parse(flow, 'yaml')), { code: 'INVALID', message: 'array longer than 4096 items' });
});

t.test('past the queue bound a body is refused at once with 429 TOO_MANY', async (t) => {
  const pool = createParsePool(verification, { threads: 1, maxQueue: 1 });
  t.teardown(() => pool.close());
  await pool.parse(Buffer.from('{}'), 'json').catch(() => {}); // the worker is loaded
  const verdicts = await Promise.all(Array.from({ length: 6 }, () => refusal(pool.parse(flow, 'yaml'))));
  const codes = verdicts.map((e) => e.code);
  t.ok(codes.includes('TOO_MANY'), `some refused as too many (${codes.join(', ')})`);
  t.ok(codes.includes('INVALID'), 'the others parsed and refused for what they are');
  t.match(verdicts.find((e) => e.code === 'TOO_MANY'), { message: /1 blueprints are waiting to be parsed already; retry later/ });
});

t.test('a body that takes longer than the time bound is answered 503 UNAVAILABLE', async (t) => {
  const pool = createParsePool(verification, { threads: 1, timeoutMs: 1 });
  t.teardown(() => pool.close());
  t.match(await refusal(pool.parse(flow, 'yaml')), { code: 'UNAVAILABLE', message: /not parsed and verified within 1 ms.*retry later/ });
});
