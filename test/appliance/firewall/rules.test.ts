import t from 'tap';
import { firewallRemovalScript, firewallScript, firewallTable, type FirewallPlan, type Listener } from '../../../appliance/firewall/rules.ts';

const NODE = 'n0de1d';
const FROM = 'iifname { "docker0", "zo-*", "zb-*" }';
const REJECT = 'reject with tcp reset';
const api = (host: string, port = 7700): Listener => ({ service: 'api', addresses: [host], port });
const nats = (host: string, port = 4222): Listener => ({ service: 'nats', addresses: [host], port });
const routes = (host: string, port = 6222): Listener => ({ service: 'nats-routes', addresses: [host], port });
const plan = (extra: Partial<FirewallPlan>): FirewallPlan => ({ node: NODE, listeners: [], open: [], nodeAddresses: ['127.0.0.1', '192.0.2.2', '172.17.0.1', '::1', 'fd00::2'], ...extra });

/** The rule lines of one chain. */
function rules(script: string, chain: 'input' | 'forward'): string[] {
  const lines = script.split('\n').map((l) => l.trim());
  const start = lines.indexOf(`chain ${chain} {`);
  const end = lines.indexOf('}', start);
  return lines.slice(start + 2, end);
}

t.test('the script replaces the node\'s own table in one go, hooked before Docker\'s chains', async (t) => {
  const script = firewallScript(plan({ listeners: [api('127.0.0.1')] }));
  t.match(script, /^table inet zone-n0de1d\ndelete table inet zone-n0de1d\ntable inet zone-n0de1d \{\n/);
  t.match(script, 'type filter hook input priority filter - 1; policy accept;');
  t.match(script, 'type filter hook forward priority filter - 1; policy accept;');
  t.equal(firewallRemovalScript(NODE), 'table inet zone-n0de1d\ndelete table inet zone-n0de1d\n');
});

const cases: { name: string; plan: FirewallPlan; input: string[]; forward: string[] }[] = [
  {
    name: 'a plain node on loopback: its ports are closed on every local address, nothing is forwarded to loopback',
    plan: plan({ listeners: [api('127.0.0.1'), nats('127.0.0.1')] }),
    input: [`${FROM} tcp dport { 4222, 7700 } ${REJECT}`],
    forward: [],
  },
  {
    name: 'a cluster node in its own namespace: closed at its address on the way through the host',
    plan: plan({ listeners: [api('10.213.0.11'), nats('10.213.0.11'), routes('10.213.0.11')], nodeAddresses: ['127.0.0.1', '10.213.0.11'] }),
    input: [`${FROM} tcp dport { 4222, 6222, 7700 } ${REJECT}`],
    forward: [`${FROM} ip daddr 10.213.0.11 tcp dport { 4222, 6222, 7700 } ${REJECT}`],
  },
  {
    name: 'a wildcard listener is closed on every address of the node, of both families for ::',
    plan: plan({ listeners: [api('0.0.0.0'), nats('::')] }),
    input: [`${FROM} tcp dport { 4222, 7700 } ${REJECT}`],
    forward: [`${FROM} ip daddr { 172.17.0.1, 192.0.2.2 } tcp dport { 4222, 7700 } ${REJECT}`, `${FROM} ip6 daddr fd00::2 tcp dport { 4222, 7700 } ${REJECT}`],
  },
  {
    name: 'an opened API stays reachable; the NATS ports do not',
    plan: plan({ listeners: [api('10.213.0.11'), nats('10.213.0.11'), routes('10.213.0.11')], open: ['api'] }),
    input: [`${FROM} tcp dport { 4222, 6222 } ${REJECT}`],
    forward: [`${FROM} ip daddr 10.213.0.11 tcp dport { 4222, 6222 } ${REJECT}`],
  },
  {
    name: 'opening api and nats leaves the routes closed',
    plan: plan({ listeners: [api('10.213.0.11'), nats('10.213.0.11'), routes('10.213.0.11')], open: ['api', 'nats'] }),
    input: [`${FROM} tcp dport 6222 ${REJECT}`],
    forward: [`${FROM} ip daddr 10.213.0.11 tcp dport 6222 ${REJECT}`],
  },
  {
    name: 'the API on several addresses: each of them',
    plan: plan({ listeners: [api('127.0.0.1'), api('10.88.1.1', 7701), nats('127.0.0.1')] }),
    input: [`${FROM} tcp dport { 4222, 7700, 7701 } ${REJECT}`],
    forward: [`${FROM} ip daddr 10.88.1.1 tcp dport { 4222, 7700, 7701 } ${REJECT}`],
  },
  {
    name: 'everything open: empty chains',
    plan: plan({ listeners: [api('127.0.0.1'), nats('127.0.0.1')], open: ['api', 'nats'] }),
    input: [],
    forward: [],
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const script = firewallScript(c.plan);
    t.strictSame(rules(script, 'input'), c.input);
    t.strictSame(rules(script, 'forward'), c.forward);
    t.equal(firewallScript(c.plan), script, 'the same plan gives the same script');
  });
}

t.test('what cannot be put in a rule is refused, naming it', async (t) => {
  t.throws(() => firewallTable('Node;drop'), /node id "Node;drop" cannot name a firewall table/);
  t.throws(() => firewallScript(plan({ listeners: [api('localhost')] })), /api address "localhost" is not an IP address/);
  t.throws(() => firewallScript(plan({ listeners: [nats('127.0.0.1', 70000)] })), /nats port 70000 is not 1-65535/);
});
