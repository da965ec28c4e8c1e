// The pure half of the WireGuard driver: desired network, peer diff, plan, dump parsing.
import t from 'tap';
import type { Network } from '../../../blueprints/schema.ts';
import type { ObservedPeer } from '../../../drivers/contract.ts';
import {
  containerMtu, containerRoutes, DEFAULT_WIREGUARD_MTU, describeDrift, desiredNetwork, diffPeers, endpointAddress, parseWireguardDump, peerArgs, planNetwork,
  wireguardMtu, type DeviceState,
} from '../../../drivers/wireguard/device-plan.ts';

const KEY_A = 'NB/evVy4s6qEHbpXyJHCO/4+sBSDVyZlXLLbQjlGYxw=';
const KEY_B = 'V8UVuNdAp5KrBW+9CQ4f9cRIctrCJ3Wqo2p4oF103iw=';
const OWN = 'mK3bTd2pxgqrPzmZRVVd3O0Smrc3JuBuhmXUH0pTbHk=';

const network: Network = {
  name: 'mesh',
  subnet: '10.88.1.0/24',
  ipRange: '10.88.0.0/16',
  wireguard: {
    privateKey: 'sealed:AAAA',
    listenPort: 51820,
    peers: [
      { publicKey: KEY_A, endpoint: '192.168.1.2:51820', allowedIPs: ['10.88.2.0/24'] },
      { publicKey: KEY_B, endpoint: '192.168.1.3:51820', allowedIPs: ['10.88.3.7/24'], persistentKeepalive: 25 },
    ],
  },
};

const observedPeer = (publicKey: string, endpoint: string, allowedIPs: string[], persistentKeepalive = 0): ObservedPeer => ({
  publicKey, endpoint, allowedIPs, latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive,
});

const converged: DeviceState = {
  namespace: true,
  bridgeAddresses: ['10.88.1.1/24'],
  interfaceAlive: true,
  interfaceUp: true,
  interfaceMtu: DEFAULT_WIREGUARD_MTU,
  device: {
    publicKey: OWN,
    listenPort: 51820,
    peers: [observedPeer(KEY_A, '192.168.1.2:51820', ['10.88.2.0/24']), observedPeer(KEY_B, '192.168.1.3:51820', ['10.88.3.0/24'], 25)],
  },
  routes: ['10.88.2.0/24', '10.88.3.0/24'],
};

t.test('the desired network uses the first host of the subnet and normalised peer ranges', async (t) => {
  const d = desiredNetwork(network, OWN);
  t.equal(d.bridgeAddress, '10.88.1.1/24');
  t.same(d.routes, ['10.88.2.0/24', '10.88.3.0/24']);
  t.same(d.wireguard?.peers[1], { publicKey: KEY_B, endpoint: '192.168.1.3:51820', allowedIPs: ['10.88.3.0/24'], persistentKeepalive: 25 });
});

t.test('a fresh node plans namespace, bridge, interface, key, peers and routes in order', async (t) => {
  const nothing: DeviceState = { namespace: false, bridgeAddresses: null, interfaceAlive: false, interfaceUp: false, interfaceMtu: null, device: null, routes: [] };
  const ops = planNetwork(desiredNetwork(network, OWN), nothing).map((s) => s.op);
  t.same(ops, ['create-namespace', 'create-bridge', 'set-bridge-address', 'create-interface', 'set-interface', 'set-mtu', 'set-peer', 'set-peer', 'interface-up', 'add-route', 'add-route']);
});

t.test('a network that matches what runs plans zero steps', async (t) => {
  t.same(planNetwork(desiredNetwork(network, OWN), converged), []);
});

t.test('a removed peer is removed alone, with its route, and the interface is not recreated', async (t) => {
  const next: Network = { ...network, wireguard: { ...network.wireguard!, peers: [network.wireguard!.peers[0]!] } };
  t.same(planNetwork(desiredNetwork(next, OWN), converged), [
    { op: 'remove-peer', publicKey: KEY_B },
    { op: 'remove-route', cidr: '10.88.3.0/24' },
  ]);
});

t.test('a changed peer is set again; unchanged peers are left alone', async (t) => {
  const peers = diffPeers(desiredNetwork(network, OWN).wireguard!.peers, [
    observedPeer(KEY_A, '192.168.1.2:51820', ['10.88.2.0/24']),
    observedPeer(KEY_B, '192.168.1.9:51820', ['10.88.3.0/24'], 25),
  ]);
  t.same(peers.set.map((p) => p.publicKey), [KEY_B]);
  t.same(peers.remove, []);
});

t.test('an endpoint given as a name is not compared with the address wg resolved', async (t) => {
  const named: Network = { ...network, wireguard: { ...network.wireguard!, peers: [{ ...network.wireguard!.peers[0]!, endpoint: 'node2.example:51820' }] } };
  const d = desiredNetwork(named, OWN).wireguard!.peers;
  t.same(diffPeers(d, [observedPeer(KEY_A, '192.168.1.2:51820', ['10.88.2.0/24'])]).set, []);
});

t.test('an interface that died is recreated and fully configured again', async (t) => {
  const ops = planNetwork(desiredNetwork(network, OWN), { ...converged, interfaceAlive: false, device: null, routes: [] }).map((s) => s.op);
  t.same(ops, ['create-interface', 'set-interface', 'set-mtu', 'set-peer', 'set-peer', 'interface-up', 'add-route', 'add-route']);
});

t.test('a new key or listen port is set on the running interface', async (t) => {
  const other = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
  t.same(planNetwork(desiredNetwork(network, other), converged), [{ op: 'set-interface', listenPort: 51820 }]);
});

t.test('a wrong bridge address is replaced', async (t) => {
  t.same(planNetwork(desiredNetwork(network, OWN), { ...converged, bridgeAddresses: ['10.88.9.1/24'] }), [
    { op: 'set-bridge-address', address: '10.88.1.1/24', replaces: ['10.88.9.1/24'] },
  ]);
});

t.test('a network without a wireguard section is node-local and loses its interface', async (t) => {
  const local: Network = { name: 'local', subnet: '10.77.0.0/24' };
  t.same(planNetwork(desiredNetwork(local, null), { ...converged, bridgeAddresses: ['10.77.0.1/24'] }).map((s) => s.op), ['delete-interface', 'remove-route', 'remove-route']);
});

t.test('drift names the peer by its public key and the field changed by hand; none when what runs is what was applied', async (t) => {
  const applied = desiredNetwork(network, OWN);
  const NOW = 1_800_000_000;
  const [peerA, peerB] = converged.device!.peers as [ObservedPeer, ObservedPeer];
  const running = (peers: ObservedPeer[], routes = converged.routes): DeviceState => ({ ...converged, device: { ...converged.device!, peers }, routes });
  const extra = observedPeer(OWN, '192.168.1.4:51820', ['10.88.4.0/24']);
  t.equal(describeDrift(applied, converged, NOW), null);
  t.equal(describeDrift(applied, running([peerA], ['10.88.2.0/24', '10.88.3.0/24']), NOW), `peer ${KEY_B} is missing`);
  t.equal(describeDrift(applied, running([peerA, { ...peerB, endpoint: '192.168.1.9:51820' }]), NOW), `peer ${KEY_B}: endpoint 192.168.1.9:51820, not 192.168.1.3:51820`);
  t.equal(describeDrift(applied, running([peerA, { ...peerB, allowedIPs: ['10.88.3.0/25'], persistentKeepalive: 0 }]), NOW),
    `peer ${KEY_B}: allowed IPs 10.88.3.0/25, not 10.88.3.0/24, keepalive 0, not 25`);
  t.equal(describeDrift(applied, running([peerA, peerB, extra]), NOW), `peer ${OWN} is not declared`);
  t.equal(describeDrift(applied, { ...converged, device: { ...converged.device!, listenPort: 51999 } }, NOW), 'listen port 51999, not 51820');
  t.equal(describeDrift(applied, { ...converged, routes: ['10.88.2.0/24'] }, NOW), 'route 10.88.3.0/24 is missing');
  const roamed = { ...peerB, endpoint: '198.51.100.7:40123', latestHandshake: NOW - 30 };
  t.equal(describeDrift(applied, running([peerA, roamed]), NOW), null, 'an endpoint moved with a live session is roaming, not drift');
  t.equal(describeDrift(applied, running([peerA, { ...roamed, latestHandshake: NOW - 600 }]), NOW), `peer ${KEY_B}: endpoint 198.51.100.7:40123, not 192.168.1.3:51820`,
    'without a session for 3 minutes it is set back');
  t.equal(describeDrift(applied, running([peerA, { ...roamed, persistentKeepalive: 0 }]), NOW), `peer ${KEY_B}: endpoint 198.51.100.7:40123, not 192.168.1.3:51820, keepalive 0, not 25`,
    'roaming excuses the endpoint only');
  t.equal(describeDrift(applied, { ...converged, interfaceAlive: false, device: null, routes: [] }, NOW), 'no WireGuard interface', 'not every step of a new interface');
});

t.test('containers route the whole range through the bridge, or the peers\' subnets without one', async (t) => {
  t.same(containerRoutes(network), ['10.88.0.0/16']);
  const { ipRange: _ipRange, ...noRange } = network;
  t.same(containerRoutes(noRange), ['10.88.2.0/24', '10.88.3.0/24']);
});

t.test('peer arguments carry only public values', async (t) => {
  t.same(peerArgs(desiredNetwork(network, OWN).wireguard!.peers[1]!), [
    'peer', KEY_B, 'endpoint', '192.168.1.3:51820', 'allowed-ips', '10.88.3.0/24', 'persistent-keepalive', '25',
  ]);
});

t.test('wg show dump is parsed and the private key is dropped', async (t) => {
  const secret = 'QJJSLVPCnDfIgbfESzXigpWhgtPZExCOMlF5IYftl00=';
  const dump = `${secret}\t${OWN}\t51820\toff\n${KEY_A}\t(none)\t192.168.1.2:51820\t10.88.2.0/24,10.99.0.1/32\t1763891000\t348\t404\toff\n${KEY_B}\t(none)\t(none)\t(none)\t0\t0\t0\t25\n`;
  const device = parseWireguardDump(dump);
  t.equal(device.publicKey, OWN);
  t.equal(device.listenPort, 51820);
  t.same(device.peers[0], {
    ...observedPeer(KEY_A, '192.168.1.2:51820', ['10.88.2.0/24', '10.99.0.1/32']), latestHandshake: 1763891000, rxBytes: 348, txBytes: 404,
  });
  t.same(device.peers[1], { ...observedPeer(KEY_B, '', [], 25), endpoint: null });
  t.notMatch(JSON.stringify(device), secret);
});

t.test('a malformed dump is an error that does not echo the private key', async (t) => {
  const secret = 'QJJSLVPCnDfIgbfESzXigpWhgtPZExCOMlF5IYftl00=';
  t.throws(() => parseWireguardDump(`${secret}\t${OWN}\n`), /interface line has 2 fields/);
  try {
    parseWireguardDump(`${secret}\t${OWN}\tnope\toff\n`);
    t.fail('should throw');
  } catch (e) {
    t.match((e as Error).message, /listen port is not a number/);
    t.notMatch((e as Error).message, secret);
  }
});

t.test('the interface MTU leaves room on the narrowest underlay path for what WireGuard adds, padding included', async (t) => {
  t.equal(wireguardMtu([]), DEFAULT_WIREGUARD_MTU, 'no path known (endpoints by name): the default');
  t.equal(wireguardMtu([1500]), 1424, 'Ethernet: 1424 + 76 = 1500');
  t.equal(wireguardMtu([1460]), 1384, 'a cloud underlay of 1460: below the default, which would fragment');
  t.equal(wireguardMtu([9000, 9000]), 8924, 'jumbo frames');
  t.equal(wireguardMtu([9000, 1500]), 1424, 'the narrowest path counts');
  t.equal(wireguardMtu([1300]), 1280, 'never below what IPv6 needs');
  // Debian's wireguard-go pads to the 1420 it started with: the largest packet stays inside the path.
  for (const underlay of [1460, 1500, 9000]) {
    const mtu = wireguardMtu([underlay]);
    for (const size of [mtu, mtu - 1, mtu - 15]) {
      const last = size > 1420 ? size % 1420 : size;
      t.ok(size + (Math.min(Math.ceil(last / 16) * 16, 1420) - last) + 60 <= underlay, `${size} bytes padded fit ${underlay}`);
    }
  }
});

t.test('only literal IPv4 endpoints have a path to measure', async (t) => {
  t.equal(endpointAddress('203.0.113.5:51820'), '203.0.113.5');
  t.equal(endpointAddress('node2.example:51820'), null);
  t.equal(endpointAddress(null), null);
});

t.test('a container link follows the overlay above Ethernet only', async (t) => {
  t.equal(containerMtu(8924), 8924);
  t.equal(containerMtu(1424), 1500);
  t.equal(containerMtu(null), 1500);
});

t.test('a new MTU is set on the running interface alone', async (t) => {
  t.same(planNetwork(desiredNetwork(network, OWN, 8924), converged), [{ op: 'set-mtu', mtu: 8924 }]);
  t.same(planNetwork(desiredNetwork(network, OWN, 8924), { ...converged, interfaceMtu: 8924 }), []);
});
