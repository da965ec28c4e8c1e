// Signing key files: written 0600, never overwritten, checked when read, no key material in errors.
import t from 'tap';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { readSigningKey, writeSigningKey } from '../../blueprints/keys.ts';
import { generateSigningKeyPair, parsePublicKey } from '../../lib/ed25519.ts';
import { refused } from './fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-test-keys-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('a written key file is mode 0600 and reads back as the same pair', async (t) => {
  const pair = generateSigningKeyPair();
  const path = join(dir, 'a.json');
  writeSigningKey(path, pair);
  t.equal(statSync(path).mode & 0o777, 0o600);
  const read = readSigningKey(path);
  t.equal(read.publicKey, pair.publicKey);
  t.same(read.secretKey, pair.secretKey);
  t.same(parsePublicKey(pair.publicKey), nacl.sign.keyPair.fromSecretKey(pair.secretKey).publicKey);
  refused(t, () => writeSigningKey(path, generateSigningKeyPair()), 'INVALID', /exists; not overwriting/);
});

t.test('key files that are open to others, malformed or inconsistent are refused without echoing the key', async (t) => {
  const pair = generateSigningKeyPair();
  const secret = Buffer.from(pair.secretKey).toString('base64');
  const write = (name: string, text: string, mode = 0o600) => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode });
    chmodSync(path, mode);
    return path;
  };
  refused(t, () => readSigningKey(write('open.json', JSON.stringify({ publicKey: pair.publicKey, secretKey: secret }), 0o644)), 'INVALID', /readable by others.*chmod 600/);
  refused(t, () => readSigningKey(write('text.json', 'not json')), 'INVALID', /not a key file/);
  refused(t, () => readSigningKey(write('short.json', JSON.stringify({ publicKey: pair.publicKey, secretKey: 'AAAA' }))), 'INVALID', /secretKey must be base64 of 64 bytes/);
  try {
    readSigningKey(write('other.json', JSON.stringify({ publicKey: generateSigningKeyPair().publicKey, secretKey: secret })));
    t.fail('a mismatched public key is refused');
  } catch (err) {
    t.match((err as Error).message, /publicKey does not belong to secretKey/);
    t.notMatch((err as Error).message, secret.slice(0, 20));
  }
  refused(t, () => readSigningKey(join(dir, 'missing.json')), 'INVALID', /cannot read key file \(ENOENT\)/);
});
