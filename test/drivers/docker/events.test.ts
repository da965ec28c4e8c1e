// Docker event messages -> DriverEvents for our node's containers only.
import t from 'tap';
import { containerEventOf } from '../../../drivers/docker/events.ts';
import { LABELS } from '../../../drivers/docker/spec.ts';

const OWNER = `ed25519:${Buffer.alloc(32, 7).toString('base64')}`;
const attributes = {
  name: 'zone-shop-web-0123abcd', image: 'zone/busybox',
  [LABELS.node]: 'node1', [LABELS.owner]: OWNER, [LABELS.blueprint]: 'shop', [LABELS.workload]: 'web', [LABELS.specHash]: 'b'.repeat(64),
};
const at = new Date('2026-11-23T09:00:00.250Z');

function message(action: string, extra: Record<string, string> = {}) {
  return { Type: 'container', Action: action, Actor: { ID: 'f'.repeat(64), Attributes: { ...attributes, ...extra } }, time: Math.floor(at.getTime() / 1000), timeNano: at.getTime() * 1e6 };
}

t.test('start, die, oom, destroy and health become driver events', async (t) => {
  const id = 'zone-shop-web-0123abcd';
  t.same(containerEventOf(message('start'), 'node1'), { type: 'started', id, at });
  t.same(containerEventOf(message('die', { exitCode: '137' }), 'node1'), { type: 'exited', id, at, exitCode: 137, oomKilled: false });
  t.same(containerEventOf(message('oom'), 'node1'), { type: 'oom', id, at });
  t.same(containerEventOf(message('destroy'), 'node1'), { type: 'removed', id, at });
  t.same(containerEventOf(message('health_status: unhealthy'), 'node1'), { type: 'health', id, at, health: 'unhealthy' });
});

t.test('anything else is ignored', async (t) => {
  t.equal(containerEventOf(message('start'), 'node2'), null, 'another node\'s container');
  t.equal(containerEventOf(message('start', { [LABELS.owner]: 'forged' }), 'node1'), null, 'forged labels');
  t.equal(containerEventOf(message('exec_start: sh'), 'node1'), null, 'an action we do not watch');
  t.equal(containerEventOf(message('health_status: weird'), 'node1'), null, 'an unknown health state');
  t.equal(containerEventOf({ ...message('start'), Type: 'network' }, 'node1'), null, 'not a container');
  t.equal(containerEventOf({ Action: 'start' }, 'node1'), null, 'malformed');
});

t.test('a die without an exit code says null', async (t) => {
  t.match(containerEventOf(message('die'), 'node1'), { type: 'exited', exitCode: null });
});
