import t from 'tap';
import { addressAt, containsIp, isHostIn, gatewayOf, normalizeCidr, routeCidr, routeDevice, splitRange } from '../../../drivers/wireguard/addresses.ts';

t.test('cidrs are normalised and host routes get /32', async (t) => {
  t.equal(normalizeCidr('10.88.3.7/24'), '10.88.3.0/24');
  t.equal(routeCidr('10.88.3.7'), '10.88.3.7/32');
  t.throws(() => normalizeCidr('10.88.3.7'), /not an IPv4 CIDR/);
});

t.test('the gateway is the first host of the subnet', async (t) => {
  t.equal(gatewayOf('10.88.1.0/24'), '10.88.1.1');
  t.equal(gatewayOf('10.88.255.128/25'), '10.88.255.129');
});

t.test('host addresses are counted from the network address, up to the broadcast', async (t) => {
  t.equal(addressAt('10.213.0.0/24', 11), '10.213.0.11');
  t.equal(addressAt('10.213.0.0/24', 254), '10.213.0.254');
  t.throws(() => addressAt('10.213.0.0/24', 255), /has no host address number 255/);
});

t.test('addresses are matched against subnets', async (t) => {
  t.ok(containsIp('10.88.1.0/24', '10.88.1.10'));
  t.notOk(containsIp('10.88.1.0/24', '10.88.2.10'));
  t.notOk(containsIp('10.88.1.0/24', 'nonsense'));
  t.ok(isHostIn('10.88.1.0/24', '10.88.1.254'));
  t.notOk(isHostIn('10.88.1.0/24', '10.88.1.0'), 'not the network address');
  t.notOk(isHostIn('10.88.1.0/24', '10.88.1.255'), 'not the broadcast address');
});

t.test('a range is split into consecutive subnets', async (t) => {
  t.same(splitRange('10.88.0.0/16', 24, 3), ['10.88.0.0/24', '10.88.1.0/24', '10.88.2.0/24']);
  t.same(splitRange('10.255.255.0/24', 26, 4), ['10.255.255.0/26', '10.255.255.64/26', '10.255.255.128/26', '10.255.255.192/26']);
  t.throws(() => splitRange('10.88.0.0/24', 26, 5), /holds 4 subnets of \/26, 5 needed/);
  t.throws(() => splitRange('10.88.0.0/24', 16, 1), /between \/24/);
});

t.test('the route to an address is the longest matching prefix, then the lowest metric', async (t) => {
  const routes = [
    { dst: 'default', dev: 'eth0' },
    { dst: '192.168.0.0/16', dev: 'eth1', metric: 100 },
    { dst: '192.168.0.0/16', dev: 'eth2', metric: 50 },
    { dst: '192.168.7.0/24', dev: 'jumbo0' },
    { dst: '192.168.7.9', dev: 'tun0' },
  ];
  t.equal(routeDevice(routes, '192.168.7.3'), 'jumbo0');
  t.equal(routeDevice(routes, '192.168.7.9'), 'tun0', 'a host route prints without /32');
  t.equal(routeDevice(routes, '192.168.8.1'), 'eth2');
  t.equal(routeDevice(routes, '203.0.113.5'), 'eth0');
  t.equal(routeDevice(routes.slice(1), '203.0.113.5'), null, 'no default: no route');
  t.equal(routeDevice(routes, 'node2.example'), null);
});
