import t from 'tap';
import { isLoopback, readProtection } from '../../appliance/read-protection.ts';

const A = 'ed25519:' + 'A'.repeat(43) + '=';
const B = 'ed25519:' + 'B'.repeat(43) + '=';
const policy = { signers: [{ key: A, weight: 1, label: 'operator' }, { key: A, weight: 1, label: 'again' }], threshold: 1 };
const at = (...hosts: string[]) => hosts.map((host) => ({ host, port: 7700 }));

t.test('loopback hosts', async (t) => {
  for (const host of ['127.0.0.1', '127.8.0.2', '::1', 'localhost', '::ffff:127.0.0.1']) t.ok(isLoopback(host), host);
  for (const host of ['0.0.0.0', '::', '10.0.0.1', 'node.example', '192.168.1.1']) t.notOk(isLoopback(host), host);
});

t.test('reads need a signer\'s token beyond loopback unless the config says otherwise', async (t) => {
  const cases: [string, Parameters<typeof readProtection>[0], { keys: string[]; maxTtlSeconds?: number } | null, boolean][] = [
    ['loopback only: open', { listen: at('127.0.0.1', '::1'), readTokens: null }, null, false],
    ['any other address: the signers\' keys', { listen: at('127.0.0.1', '10.88.1.1'), readTokens: null }, { keys: [A] }, true],
    ['all addresses: the signers\' keys', { listen: at('0.0.0.0'), readTokens: null }, { keys: [A] }, true],
    ['public: open everywhere', { listen: at('0.0.0.0'), readTokens: { public: true, keys: null } }, null, false],
    ['own keys', { listen: at('0.0.0.0'), readTokens: { public: false, keys: [B], maxTtlSeconds: 60 } }, { keys: [B], maxTtlSeconds: 60 }, false],
    ['asked for on loopback: the signers\' keys', { listen: at('127.0.0.1'), readTokens: { public: false, keys: null, maxTtlSeconds: 30 } }, { keys: [A], maxTtlSeconds: 30 }, false],
  ];
  for (const [what, config, options, defaulted] of cases) {
    const r = readProtection(config, policy);
    t.same([r.options, r.defaulted], [options, defaulted], what);
  }
  t.match(readProtection({ listen: at('10.88.1.1'), readTokens: null }, policy).summary, /read protection on \(the API listens beyond loopback: 10\.88\.1\.1:7700\).*"readTokens": \{"public": true\}/);
});
