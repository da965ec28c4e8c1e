// Sealed secrets open only with the node's key, and no error ever holds the clear value.
import t from 'tap';
import nacl from 'tweetnacl';
import { generateBoxKeyPair, openSealed, sealSecret } from '../../blueprints/seal.ts';
import { SEALED_PATTERN } from '../../blueprints/schema.ts';
import { refused } from './fixtures.ts';

const node = generateBoxKeyPair();
const CLEAR = 'wg-private-key-Zm9vYmFy-ünïcödé';

t.test('a sealed value opens with the node key, and is fresh every time', async (t) => {
  const sealed = sealSecret(CLEAR, node.publicKey);
  t.match(sealed, new RegExp(SEALED_PATTERN));
  t.notMatch(sealed, /wg-private/);
  t.equal(openSealed(sealed, node.secretKey), CLEAR);
  t.not(sealSecret(CLEAR, node.publicKey), sealed, 'a new ephemeral key and nonce each time');
  const bytes = Buffer.from(sealed.slice('sealed:'.length), 'base64');
  t.equal(bytes.length, 32 + 24 + nacl.box.overheadLength + Buffer.byteLength(CLEAR), 'ephemeral key, nonce, box');
});

t.test('another node, an altered value or a malformed one is refused without the clear value', async (t) => {
  const sealed = sealSecret(CLEAR, node.publicKey);
  const bytes = Buffer.from(sealed.slice(7), 'base64');
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 1, bytes.length - 1);
  const attempts = [
    () => openSealed(sealed, generateBoxKeyPair().secretKey),
    () => openSealed(`sealed:${bytes.toString('base64')}`, node.secretKey),
    () => openSealed('sealed:AAAA', node.secretKey),
    () => openSealed(CLEAR, node.secretKey),
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
  refused(t, () => sealSecret(CLEAR, 'not-a-key'), 'INVALID', /base64 of 32 bytes/);
  refused(t, () => sealSecret('x'.repeat(7000), node.publicKey), 'INVALID', /too long/);
});
