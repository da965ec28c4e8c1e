import t, { type Test } from 'tap';
import { generateSigningKeyPair } from '../../../lib/ed25519.ts';
import { ZoneError } from '../../../lib/errors.ts';
import type { TrustPolicy } from '../../../blueprints/policy.ts';
import { validateTrustPolicy } from '../../../blueprints/policy.ts';
import type { SignedRelease } from '../../../appliance/release/manifest.ts';
import { signRelease } from '../../../appliance/release/sign.ts';
import { verifyRelease, type ReleaseContext } from '../../../appliance/release/verify.ts';
import { compareVersions, satisfiesEngine } from '../../../appliance/release/versions.ts';

const alice = generateSigningKeyPair();
const bob = generateSigningKeyPair();
const mallory = generateSigningKeyPair();
const policy: TrustPolicy = { signers: [{ key: alice.publicKey, weight: 1, label: 'alice' }, { key: bob.publicKey, weight: 1, label: 'bob' }], threshold: 2 };
const ctx: ReleaseContext = { policy, running: '0.1.0', nodeVersion: '20.11.1', storeSchema: 1 };

const release = (patch: Partial<SignedRelease['manifest']> = {}): SignedRelease => ({
  manifest: {
    format: 'zone-release-v1', version: '0.2.0', engines: { node: '>=20' }, storeSchema: 1, builtAt: '2026-11-30T00:00:00Z',
    files: [{ path: 'api/main.ts', sha256: 'a'.repeat(64), size: 10 }], ...patch,
  },
});
const signedBy = (r: SignedRelease, ...keys: typeof alice[]) => keys.reduce((acc, k) => signRelease(acc, k.secretKey), r);

function refused(t: Test, fn: () => unknown, code: string, reason: RegExp, field: string): void {
  try {
    fn();
    t.fail('accepted');
  } catch (err) {
    t.ok(err instanceof ZoneError, 'a ZoneError');
    t.match(err, { code, field, message: reason });
  }
}

t.test('a release signed by the quorum, newer, for this Node, is taken; the signers are named', async (t) => {
  t.same(verifyRelease(signedBy(release(), alice, bob), ctx), ['alice', 'bob']);
});

t.test('an unsigned release is refused', async (t) => {
  refused(t, () => verifyRelease(release(), ctx), 'SIGNATURE', /not signed/, '/signatures');
});

t.test('a release under the quorum is refused, untrusted signatures counting 0', async (t) => {
  refused(t, () => verifyRelease(signedBy(release(), alice), ctx), 'POLICY', /weigh 1, the trust policy needs 2/, '/signatures');
  refused(t, () => verifyRelease(signedBy(release(), alice, mallory), ctx), 'POLICY', /1 signature\(s\) by keys not trusted/, '/signatures');
});

t.test('a manifest altered after signing (a file digest changed) is refused', async (t) => {
  const signed = signedBy(release(), alice, bob);
  const tampered = { ...signed, manifest: { ...signed.manifest, files: [{ path: 'api/main.ts', sha256: 'b'.repeat(64), size: 10 }] } };
  refused(t, () => verifyRelease(tampered, ctx), 'SIGNATURE', /does not verify over this release's manifest/, '/signatures/0/sig');
});

t.test('a downgrade is refused unless signed as a rollback; the running version is refused too', async (t) => {
  const old = { ...ctx, running: '0.3.0' };
  refused(t, () => verifyRelease(signedBy(release(), alice, bob), old), 'STALE', /older than the running 0\.3\.0.*signed as a rollback/, '/manifest/version');
  t.same(verifyRelease(signedBy(release({ rollback: true }), alice, bob), old), ['alice', 'bob']);
  refused(t, () => verifyRelease(signedBy(release(), alice, bob), { ...ctx, running: '0.2.0' }), 'STALE', /is the version this node runs/, '/manifest/version');
});

t.test('a release whose Node engine range this node does not meet is refused', async (t) => {
  refused(t, () => verifyRelease(signedBy(release({ engines: { node: '>=22' } }), alice, bob), ctx), 'CONFLICT', /needs Node >=22; this node runs Node 20\.11\.1/, '/manifest/engines/node');
  refused(t, () => verifyRelease(signedBy(release({ engines: { node: 'latest' } }), alice, bob), ctx), 'INVALID', /not a range this node reads/, '/manifest/engines/node');
});

t.test('a release that could not open the node\'s store (an older schema) is refused', async (t) => {
  refused(t, () => verifyRelease(signedBy(release(), alice, bob), { ...ctx, storeSchema: 2 }), 'CONFLICT', /store schema 1, this node's store is at 2/, '/manifest/storeSchema');
});

t.test('a releases section of the trust policy decides alone who signs releases', async (t) => {
  const own = validateTrustPolicy({ ...policy, releases: { signers: [{ key: mallory.publicKey, weight: 1, label: 'release-team' }], threshold: 1 } });
  t.same(verifyRelease(signedBy(release(), mallory), { ...ctx, policy: own }), ['release-team']);
  refused(t, () => verifyRelease(signedBy(release(), alice, bob), { ...ctx, policy: own }), 'POLICY', /weigh 0, the trust policy needs 1/, '/signatures');
  t.throws(() => validateTrustPolicy({ ...policy, releases: { signers: [{ key: mallory.publicKey, weight: 1 }], threshold: 2 } }), { code: 'INVALID', field: '/releases/threshold' });
});

t.test('versions and engine ranges', async (t) => {
  const rows: [string, string, boolean][] = [
    ['20.11.1', '>=20', true], ['18.19.0', '>=20', false], ['20.11.1', '>=20.10 <23', true], ['23.0.0', '>=20.10 <23', false],
    ['20.11.1', '^20.5.0', true], ['21.0.0', '^20.5.0', false], ['20.11.1', '~20.11.0', true], ['20.12.0', '~20.11.0', false],
    ['18.0.0', '^18 || >=20', true], ['19.0.0', '^18 || >=20', false], ['20.11.1', '20', true], ['20.11.1', '20.11.1', true],
  ];
  for (const [version, range, ok] of rows) t.equal(satisfiesEngine(version, range), ok, `${version} ${ok ? 'meets' : 'does not meet'} ${range}`);
  t.equal(compareVersions('0.10.0', '0.9.9'), 1, 'numeric, not lexical');
  t.equal(compareVersions('1.0.0', '1.0.0'), 0);
});
