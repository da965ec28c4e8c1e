// Owners bound to signers and sealed values bound to their place, at the API: a
// blueprint for an owner its signer may not act for is 403 naming the owner; a sealed
// value copied to another blueprint, owner, field or node is refused at submission.
import t from 'tap';
import { generateBoxKeyPair, sealSecret, type SealBinding } from '../../blueprints/seal.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { box, call, startNode, type TestNode } from './node.ts';

const put = (n: TestNode, name: string, body: unknown) => call(`${n.url}/v1/blueprints/${name}`, { method: 'PUT', body });
const CLEAR = 'bound-secret-3c9e71d0';

t.test('a blueprint for owner B signed only by an operator without a grant for B is 403, naming B', async (t) => {
  const n = await startNode(t);
  const bob = generateSigningKeyPair();
  const forBob = n.sign({ name: 'web', version: 1, owner: bob.publicKey, workloads: [box('a')] });
  const res = await put(n, 'web', forBob);
  t.match(res, { status: 403, json: { error: 'POLICY', field: '/owner' } });
  t.ok(String(res.json.message).includes(`owner ${bob.publicKey} did not sign this blueprint, and operator may not act for it`), String(res.json.message));
  const tomb = await put(n, 'web', n.sign({ name: 'web', version: 2, owner: bob.publicKey, delete: true }));
  t.match(tomb, { status: 403, json: { error: 'POLICY', field: '/owner' } }, 'a tombstone for B as well');
  t.same(n.appliance.listBlueprints(), [], 'nothing stored');
  t.match(await put(n, 'web', n.sign({ name: 'web', version: 1, workloads: [box('a')] })), { status: 202 }, 'its own key needs no grant');
});

t.test('with owners: "*" the operator may act for B', async (t) => {
  const n = await startNode(t, {}, { operatorOwners: '*' });
  const bob = generateSigningKeyPair();
  t.match(await put(n, 'web', n.sign({ name: 'web', version: 1, owner: bob.publicKey, workloads: [box('a')] })), { status: 202, json: { owner: bob.publicKey } });
});

t.test('a sealed value opens only where it was sealed for: copies are refused at submission, without the clear value', async (t) => {
  const n = await startNode(t, {}, { operatorOwners: '*' });
  const node = n.appliance.identity;
  const place: SealBinding = { owner: n.operator.publicKey, node: node.id, blueprint: 'shop', field: 'workloads/web/env/TOKEN' };
  const sealed = sealSecret(CLEAR, node.box.publicKey, place);
  const withToken = (name: string, extra: Record<string, unknown> = {}, env: Record<string, string> = { TOKEN: sealed }) =>
    n.sign({ name, version: 1, workloads: [box('web', { env })], ...extra });
  const bob = generateSigningKeyPair();
  const texts: string[] = [];
  const attempt = async (what: string, name: string, body: unknown, status: number, reason: RegExp) => {
    const res = await put(n, name, body);
    texts.push(res.text);
    t.equal(res.status, status, `${what}: ${res.text}`);
    t.match(res.json.message, reason, what);
  };
  await attempt('another blueprint', 'other', withToken('other'), 403, /bound to blueprint shop, not other/);
  await attempt('another owner\'s blueprint', 'shop', withToken('shop', { owner: bob.publicKey }), 403, /bound to owner/);
  await attempt('another field', 'shop', withToken('shop', {}, { PASSWORD: sealed }), 403, /bound to field workloads\/web\/env\/TOKEN, not workloads\/web\/env\/PASSWORD/);
  await attempt('another workload', 'shop', n.sign({ name: 'shop', version: 1, workloads: [box('db', { env: { TOKEN: sealed } })] }), 403, /bound to field/);
  const forOtherNode = sealSecret(CLEAR, generateBoxKeyPair().publicKey, { ...place, node: 'othernode' });
  await attempt('another node\'s value', 'shop', withToken('shop', {}, { TOKEN: forOtherNode }), 401, /does not open with this node's key/);
  const otherNodeId = sealSecret(CLEAR, node.box.publicKey, { ...place, node: 'othernode' });
  await attempt('this node\'s key, another node id', 'shop', withToken('shop', {}, { TOKEN: otherNodeId }), 403, /bound to node othernode/);
  t.same(n.appliance.listBlueprints(), [], 'nothing refused was stored');
  t.match(await put(n, 'shop', withToken('shop')), { status: 202 }, 'at its place it is accepted');
  const anyField = sealSecret(CLEAR, node.box.publicKey, { ...place, blueprint: '*', field: '*' });
  t.match(await put(n, 'any', withToken('any', {}, { OTHER: anyField })), { status: 202 }, '* admits any blueprint and field of the owner');
  const everything = texts.join('\n') + n.log() + JSON.stringify(n.appliance.events({})) + (await call(`${n.url}/v1/blueprints`)).text;
  t.notOk(everything.includes(CLEAR), 'the clear value appears in no reply, log or event');
});
