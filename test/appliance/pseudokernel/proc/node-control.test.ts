// Restart requests between nodes over a real nats-server: the answer carries the
// answering node's refusal (code, message, field), a malformed request is refused
// naming what is wrong, and a node nobody serves is said to be absent.
import type { NatsConnection } from '@nats-io/transport-node';
import t from 'tap';
import { ZoneError } from '../../../../lib/errors.ts';
import { createLogger } from '../../../../appliance/logger.ts';
import { requestRestart, restartSubject, serveRestarts, type RestartRequest } from '../../../../appliance/pseudokernel/proc/node-control.ts';
import { natsForFile } from '../../../helpers/nats.ts';

const logger = createLogger({ level: 'fatal' });
let nc: NatsConnection;

t.before(async () => {
  nc = await natsForFile('control', logger);
});

t.test('a request reaches the named node only, and its refusal comes back as it was made', async (t) => {
  const asked: [string, RestartRequest][] = [];
  const serve = (node: string) => serveRestarts(nc, node, async (r) => {
    asked.push([node, r]);
    if (r.workload === 'busy') throw new ZoneError('CONFLICT', 'busy right now', '/params/workload');
    if (r.workload === 'broken') throw new Error('the engine fell over');
  }, logger);
  const subs = [serve('nodea'), serve('nodeb')];
  t.teardown(() => subs.forEach((s) => s.unsubscribe()));

  await requestRestart(nc, 'nodeb', { token: 'Zone x.y', blueprint: 'shop', workload: 'web' });
  t.same(asked, [['nodeb', { token: 'Zone x.y', blueprint: 'shop', workload: 'web' }]], 'node b was asked, with the token as given');
  await t.rejects(requestRestart(nc, 'nodea', { token: 't', blueprint: 'shop', workload: 'busy' }), { code: 'CONFLICT', message: 'busy right now', field: '/params/workload' });
  await t.rejects(requestRestart(nc, 'nodea', { token: 't', blueprint: 'shop', workload: 'broken' }), { code: 'UNAVAILABLE', message: /node nodea could not restart it: the engine fell over/ });
  await t.rejects(requestRestart(nc, 'nodec', { token: 't', blueprint: 'shop', workload: 'web' }), { code: 'NOT_FOUND', message: /node nodec is not on this grid/, field: '/params/node' });
});

t.test('a malformed request is refused naming the field, and the handler is not called', async (t) => {
  let called = 0;
  const sub = serveRestarts(nc, 'nodea', async () => void called++, logger);
  t.teardown(() => sub.unsubscribe());
  const ask = async (payload: string) => (await nc.request(restartSubject('nodea'), payload, { timeout: 5000 })).json();
  t.match(await ask('not json'), { error: 'INVALID', message: /not JSON/ });
  t.match(await ask(JSON.stringify({ token: 't', blueprint: 'Shop!', workload: 'web' })), { error: 'INVALID', field: '/blueprint' });
  t.match(await ask(JSON.stringify({ token: 't', blueprint: 'shop', workload: 'web', extra: 1 })), { error: 'INVALID', field: '/extra' });
  t.match(await ask(JSON.stringify([])), { error: 'INVALID' });
  t.equal(called, 0);
});
