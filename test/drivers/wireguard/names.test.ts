// Names of the network driver: the namespace carries 128 bits of the identity's hash;
// interface names fit IFNAMSIZ (15 bytes) and aliases IFALIASZ (255 bytes).
import t from 'tap';
import { Value } from '@sinclair/typebox/value';
import {
  containerInterface, containerLink, isVmBridgeOf, linkAlias, networkAlias, vmBridgeAlias, vmLinks, wireguardInterface,
} from '../../../drivers/wireguard/names.ts';
import { networkId } from '../../../drivers/names.ts';
import { NetworkState } from '../../../drivers/wireguard/state.ts';

const IFNAMSIZ = 15;
const IFALIASZ = 255;
const OWNER_A = `ed25519:${Buffer.alloc(32, 1).toString('base64')}`;
const OWNER_B = `ed25519:${Buffer.alloc(32, 2).toString('base64')}`;
const longest = { node: 'n'.repeat(64), owner: OWNER_A, blueprint: 'b'.repeat(63), network: 'm'.repeat(63) };
const mesh = (owner: string, node = 'node1') => ({ node, owner, blueprint: 'app', network: 'mesh' });

t.test('a network namespace carries 128 bits of the whole identity\'s hash', async (t) => {
  const id = networkId(mesh(OWNER_A));
  t.match(id, /^zn-[0-9a-f]{32}$/);
  t.not(id, networkId(mesh(OWNER_B)), 'another owner');
  t.not(id, networkId(mesh(OWNER_A, 'node2')), 'another node on the same machine');
  t.not(id, networkId({ ...mesh(OWNER_A), network: 'mesh2' }));
});

t.test('every interface name fits 15 bytes, every alias 255', async (t) => {
  const id = networkId(longest);
  const names = [wireguardInterface(id), wireguardInterface(id, 15), containerLink('255.255.255.255'), containerInterface(id),
    ...Object.values(vmLinks(id, '10.88.255.254')).slice(0, 3)];
  for (const name of names) t.ok(Buffer.byteLength(name) <= IFNAMSIZ, `${name} fits`);
  for (const alias of [networkAlias(longest), linkAlias(id), vmBridgeAlias(id, '255.255.255.255')]) t.ok(Buffer.byteLength(alias) <= IFALIASZ, `${alias.length} bytes`);
});

t.test('the WireGuard interface\'s candidates differ, and each is a valid recorded name', async (t) => {
  const id = networkId(mesh(OWNER_A));
  const candidates = Array.from({ length: 16 }, (_, i) => wireguardInterface(id, i));
  t.equal(new Set(candidates).size, 16);
  const state = { id, ...mesh(OWNER_A), implementation: 'kernel', pid: null };
  for (const name of candidates) t.ok(Value.Check(NetworkState, { ...state, interface: name }), name);
  t.ok(Value.Check(NetworkState, { ...state, id: 'zn-0123abcd', interface: 'zw-0123abcd' }), 'an older appliance\'s state still reads (to be removed)');
});

t.test('a member\'s link is named by its IP: distinct addresses never share one', async (t) => {
  t.equal(containerLink('10.88.1.10'), 'zc-0a58010a');
  t.not(containerLink('10.1.11.1'), containerLink('10.11.1.1'));
  const id = networkId(mesh(OWNER_A));
  t.not(vmLinks(id, '10.88.1.20').mac, vmLinks(id, '10.88.1.21').mac, 'MACs of two VMs of a network differ');
  t.equal(vmLinks(id, '10.88.1.20').mac, '52:54:00:58:01:14');
  t.not(vmLinks(id, '10.88.1.20').bridge, vmLinks(networkId(mesh(OWNER_B)), '10.88.1.20').bridge, 'two owners with the same network and IP');
});

t.test('a VM bridge belongs to its network by alias (this scheme\'s or an older appliance\'s)', async (t) => {
  const id = networkId(mesh(OWNER_A));
  t.ok(isVmBridgeOf(vmBridgeAlias(id, '10.88.1.20'), id));
  t.ok(isVmBridgeOf(`zone:${id}`, id));
  t.notOk(isVmBridgeOf(vmBridgeAlias(networkId(mesh(OWNER_B)), '10.88.1.20'), id));
  t.notOk(isVmBridgeOf(`zone:${id}0`, id), 'a longer id that starts the same');
  t.notOk(isVmBridgeOf(undefined, id));
});
