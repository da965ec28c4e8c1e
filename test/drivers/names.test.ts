// Engine-side names of workloads: derived from the whole identity with 128 bits of hash,
// within what the engines take, and recognisable (with the names older appliances gave).
import t from 'tap';
import { CONTAINER_NAME_PATTERN } from '../../drivers/docker/observed.ts';
import { DOMAIN_ID } from '../../drivers/libvirt/spec.ts';
import { describeWorkload, identityDigest, isNameOf, legacyWorkloadId, NAME_HASH_HEX, nameClash, workloadId } from '../../drivers/names.ts';
import type { WorkloadSpec } from '../../drivers/contract.ts';

const OWNER_A = `ed25519:${Buffer.alloc(32, 1).toString('base64')}`;
const OWNER_B = `ed25519:${Buffer.alloc(32, 2).toString('base64')}`;
const LONGEST = 'a'.repeat(63);
const NODE = 'n'.repeat(64);

t.test('a workload id carries 128 bits of the identity\'s hash and fits Docker and libvirt names', async (t) => {
  t.equal(NAME_HASH_HEX * 4, 128);
  const id = workloadId('node1', OWNER_A, 'shop', 'web');
  t.match(id, new RegExp(`^zone-shop-web-[0-9a-f]{${NAME_HASH_HEX}}$`));
  const longest = workloadId(NODE, OWNER_A, LONGEST, LONGEST);
  t.equal(longest.length, 5 + 63 + 1 + 63 + 1 + 32, 'the longest names make 165 characters');
  t.match(longest, new RegExp(CONTAINER_NAME_PATTERN), 'a Docker container name');
  t.match(longest, DOMAIN_ID, 'a libvirt domain name');
  t.equal(workloadId('node1', OWNER_A, 'shop', 'web'), id, 'stable');
});

t.test('every part of the identity changes the name', async (t) => {
  const base = workloadId('node1', OWNER_A, 'shop', 'web');
  const others = [
    workloadId('node2', OWNER_A, 'shop', 'web'),
    workloadId('node1', OWNER_B, 'shop', 'web'),
    workloadId('node1', OWNER_A, 'shop2', 'web'),
    workloadId('node1', OWNER_A, 'shop', 'web2'),
  ];
  t.equal(new Set([base, ...others]).size, 5);
  // The readable part is ambiguous (`a-b` + `c` and `a` + `b-c`); the hash is not.
  t.not(workloadId('node1', OWNER_A, 'a-b', 'c'), workloadId('node1', OWNER_A, 'a', 'b-c'));
  t.not(identityDigest('workload', ['x', 'y']), identityDigest('network', ['x', 'y']), 'kinds are kept apart');
});

t.test('a name is the identity\'s own (or the one older appliances gave), never another\'s', async (t) => {
  const a = { node: 'node1', owner: OWNER_A, blueprint: 'shop', workload: 'web' };
  t.ok(isNameOf(workloadId('node1', OWNER_A, 'shop', 'web'), a));
  const legacy = legacyWorkloadId('node1', OWNER_A, 'shop', 'web');
  t.match(legacy, /^zone-shop-web-[0-9a-f]{8}$/);
  t.ok(isNameOf(legacy, a), 'the 32-bit name of an older appliance');
  t.notOk(isNameOf(workloadId('node1', OWNER_B, 'shop', 'web'), a), 'another owner\'s name');
  t.notOk(isNameOf('zone-shop-web-00000000', a));
});

t.test('a clash error names both identities', async (t) => {
  const spec = { node: 'node1', owner: OWNER_A, blueprint: 'shop', workload: 'web', id: 'zone-shop-web-x' } as WorkloadSpec;
  const holder = { node: 'node1', owner: OWNER_B, blueprint: 'shop', workload: 'web' };
  const err = nameClash(spec, 'container', holder);
  t.equal(err.code, 'WORKLOAD_SPEC');
  t.equal(err.field, 'name');
  t.match(err.message, describeWorkload(spec));
  t.match(err.message, describeWorkload(holder));
  t.match(nameClash(spec, 'container', null).message, /records no zone identity/);
});
