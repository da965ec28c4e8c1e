// RFC 8032 section 7.1 vectors through the project's verify path (Node crypto), with
// tweetnacl as the cross-check of signing and verifying.
import t from 'tap';
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { verifyEd25519 } from '../../lib/ed25519.ts';

const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));

const VECTORS = [
  {
    name: 'TEST 1 (empty message)',
    seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    name: 'TEST 2 (one byte)',
    seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    name: 'TEST 3 (two bytes)',
    seed: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    publicKey: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    message: 'af82',
    signature: '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
  {
    name: 'TEST SHA(abc)',
    seed: '833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42',
    publicKey: 'ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf',
    message: createHash('sha512').update('abc').digest('hex'),
    signature: 'dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704',
  },
];

for (const v of VECTORS) {
  t.test(`RFC 8032 ${v.name}`, async (t) => {
    const publicKey = hex(v.publicKey);
    const message = hex(v.message);
    const signature = hex(v.signature);
    t.ok(verifyEd25519(message, signature, publicKey), 'Node crypto accepts the RFC signature');
    t.ok(nacl.sign.detached.verify(message, signature, publicKey), 'tweetnacl accepts it too');
    const pair = nacl.sign.keyPair.fromSeed(hex(v.seed));
    t.equal(Buffer.from(pair.publicKey).toString('hex'), v.publicKey, 'tweetnacl derives the RFC public key');
    t.equal(Buffer.from(nacl.sign.detached(message, pair.secretKey)).toString('hex'), v.signature, 'tweetnacl signs as the RFC says');

    const flipped = Uint8Array.from(signature);
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    t.notOk(verifyEd25519(message, flipped, publicKey), 'a flipped signature bit is refused');
    t.notOk(verifyEd25519(Buffer.concat([message, Buffer.from([0])]), signature, publicKey), 'a longer message is refused');
  });
}

t.test('malformed keys and signatures are refused, never thrown', async (t) => {
  const v = VECTORS[0]!;
  t.notOk(verifyEd25519(hex(v.message), hex(v.signature).subarray(1), hex(v.publicKey)), 'short signature');
  t.notOk(verifyEd25519(hex(v.message), hex(v.signature), hex(v.publicKey).subarray(1)), 'short key');
  t.notOk(verifyEd25519(hex(v.message), hex(v.signature), new Uint8Array(32).fill(0xff)), 'a key that is no curve point');
});
