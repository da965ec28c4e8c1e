// Sealed secrets open only with the node's key and only at the place they were sealed
// for (owner, node, blueprint, field); no error ever holds the clear value.
import t from 'tap';
import nacl from 'tweetnacl';
import { generateBoxKeyPair, isUnboundSealed, openSealed, sealSecret, type SealBinding } from '../../blueprints/seal.ts';
import { SEALED_PATTERN } from '../../blueprints/schema.ts';
import { keys, refused } from './fixtures.ts';

const node = generateBoxKeyPair();
const CLEAR = 'wg-private-key-Zm9vYmFy-ünïcödé';
const PLACE: SealBinding = { owner: keys.alice.publicKey, node: 'node1', blueprint: 'shop', field: 'workloads/web/env/TOKEN' };

/** The format v1 of the same value: the bare text in a box, no place. */
function sealV1(clear: string, boxKey: string): string {
  const sender = nacl.box.keyPair();
  const nonce = nacl.randomBytes(nacl.box.nonceLength);
  const box = nacl.box(Buffer.from(clear), nonce, Buffer.from(boxKey, 'base64'), sender.secretKey);
  return `sealed:${Buffer.concat([sender.publicKey, nonce, box]).toString('base64')}`;
}

t.test('a sealed value opens with the node key at its place, and is fresh every time', async (t) => {
  const sealed = sealSecret(CLEAR, node.publicKey, PLACE);
  t.match(sealed, new RegExp(SEALED_PATTERN));
  t.match(sealed, /^sealed:v2:/);
  t.notMatch(sealed, /wg-private|shop|TOKEN/, 'neither the value nor its place shows');
  t.equal(openSealed(sealed, node.secretKey, PLACE), CLEAR);
  t.not(sealSecret(CLEAR, node.publicKey, PLACE), sealed, 'a new ephemeral key and nonce each time');
  const bytes = Buffer.from(sealed.slice('sealed:v2:'.length), 'base64');
  t.ok(bytes.length > 32 + 24 + nacl.box.overheadLength + Buffer.byteLength(CLEAR), 'ephemeral key, nonce, box of the value and its place');
});

t.test('copied to another owner, node, blueprint or field, it does not open', async (t) => {
  const sealed = sealSecret(CLEAR, node.publicKey, PLACE);
  const elsewhere: [Partial<SealBinding>, RegExp][] = [
    [{ owner: keys.bob.publicKey }, /bound to owner ed25519:.*, not ed25519:/],
    [{ node: 'node2' }, /bound to node node1, not node2/],
    [{ blueprint: 'other' }, /bound to blueprint shop, not other/],
    [{ field: 'workloads/web/env/OTHER' }, /bound to field workloads\/web\/env\/TOKEN, not workloads\/web\/env\/OTHER/],
    [{ field: 'workloads/db/env/TOKEN' }, /bound to field/],
    [{ field: 'networks/web/wireguard/privateKey' }, /bound to field/],
  ];
  for (const [change, reason] of elsewhere) {
    refused(t, () => openSealed(sealed, node.secretKey, { ...PLACE, ...change }), 'POLICY', reason);
  }
});

t.test('* admits any blueprint or field of the owner on the node, and nothing else', async (t) => {
  const anyField = sealSecret(CLEAR, node.publicKey, { ...PLACE, field: '*' });
  t.equal(openSealed(anyField, node.secretKey, { ...PLACE, field: 'networks/mesh/wireguard/privateKey' }), CLEAR);
  refused(t, () => openSealed(anyField, node.secretKey, { ...PLACE, blueprint: 'other' }), 'POLICY', /blueprint shop/);
  const anywhere = sealSecret(CLEAR, node.publicKey, { ...PLACE, blueprint: '*', field: '*' });
  t.equal(openSealed(anywhere, node.secretKey, { ...PLACE, blueprint: 'other', field: 'workloads/x/env/Y' }), CLEAR);
  refused(t, () => openSealed(anywhere, node.secretKey, { ...PLACE, owner: keys.bob.publicKey }), 'POLICY', /bound to owner/);
  refused(t, () => openSealed(anywhere, node.secretKey, { ...PLACE, node: 'node2' }), 'POLICY', /bound to node/);
});

t.test('another node\'s key, an altered value, a malformed one or the old format is refused without the clear value', async (t) => {
  const sealed = sealSecret(CLEAR, node.publicKey, PLACE);
  const bytes = Buffer.from(sealed.slice('sealed:v2:'.length), 'base64');
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 1, bytes.length - 1);
  const v1 = sealV1(CLEAR, node.publicKey);
  const attempts = [
    () => openSealed(sealed, generateBoxKeyPair().secretKey, PLACE),
    () => openSealed(`sealed:v2:${bytes.toString('base64')}`, node.secretKey, PLACE),
    () => openSealed('sealed:v2:AAAA', node.secretKey, PLACE),
    () => openSealed(CLEAR, node.secretKey, PLACE),
    () => openSealed(v1, node.secretKey, PLACE),
  ];
  for (const attempt of attempts) {
    try {
      attempt();
      t.fail('refused');
    } catch (err) {
      t.notMatch(String((err as Error).message), /wg-private|Zm9v/);
    }
  }
  refused(t, attempts[0]!, 'SIGNATURE', /does not open with this node's key/);
  refused(t, attempts[3]!, 'INVALID', /not a sealed value/);
  refused(t, attempts[4]!, 'INVALID', /old format \(v1\).*re-seal it with zone seal --owner/);
  t.ok(isUnboundSealed(v1));
  t.notOk(isUnboundSealed(sealed));
});

t.test('a binding that names no place is refused before anything is sealed', async (t) => {
  refused(t, () => sealSecret(CLEAR, 'not-a-key', PLACE), 'INVALID', /base64 of 32 bytes/);
  refused(t, () => sealSecret('x'.repeat(6000), node.publicKey, PLACE), 'INVALID', /too long/);
  refused(t, () => sealSecret(CLEAR, node.publicKey, { ...PLACE, owner: 'alice' }), 'INVALID', /owner "alice"/, 'owner');
  refused(t, () => sealSecret(CLEAR, node.publicKey, { ...PLACE, node: '*' }), 'INVALID', /node "\*"/, 'node');
  refused(t, () => sealSecret(CLEAR, node.publicKey, { ...PLACE, blueprint: 'Shop!' }), 'INVALID', /blueprint "Shop!"/, 'blueprint');
  for (const field of ['/workloads/0/env/TOKEN', 'workloads/web/env', 'workloads/web/command/0', 'networks/mesh/subnet', '']) {
    refused(t, () => sealSecret(CLEAR, node.publicKey, { ...PLACE, field }), 'INVALID', /is not workloads\/NAME\/env\/VAR/, 'field');
  }
});
