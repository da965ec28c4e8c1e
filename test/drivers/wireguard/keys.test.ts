import t from 'tap';
import { execFileSync } from 'node:child_process';
import { generateWireguardKeyPair, wireguardPublicKey } from '../../../drivers/wireguard/keys.ts';

t.test('generated keys are clamped and their public key is the one wg computes', async (t) => {
  const pair = generateWireguardKeyPair();
  const raw = Buffer.from(pair.privateKey, 'base64');
  t.equal(raw[0]! & 7, 0);
  t.equal(raw[31]! & 0xc0, 0x40);
  t.equal(pair.publicKey, execFileSync('wg', ['pubkey'], { input: pair.privateKey }).toString().trim());
});

t.test('the public key of a key made by wg genkey matches wg pubkey', async (t) => {
  const privateKey = execFileSync('wg', ['genkey']).toString().trim();
  t.equal(wireguardPublicKey(privateKey), execFileSync('wg', ['pubkey'], { input: privateKey }).toString().trim());
});

t.test('a value that is not a key is refused without being echoed', async (t) => {
  t.throws(() => wireguardPublicKey('hunter2'), { message: /not a WireGuard private key/ });
  try {
    wireguardPublicKey('hunter2');
  } catch (e) {
    t.notMatch((e as Error).message, 'hunter2');
  }
});
