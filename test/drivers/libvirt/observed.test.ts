import t from 'tap';
import { DomainStates, domainEvents, observedOf, observedStateOf, type PollView } from '../../../drivers/libvirt/observed.ts';

const at = new Date('2026-01-01T00:00:00Z');
const view = (entries: [string, PollView][]): Map<string, PollView> => new Map(entries);
const running = (domainId: number): PollView => ({ state: 'running', domainId, exitCode: null });

t.test('libvirt states map to the contract states', async (t) => {
  t.equal(observedStateOf(DomainStates.RUNNING, true), 'running');
  t.equal(observedStateOf(DomainStates.BLOCKED, true), 'running');
  t.equal(observedStateOf(DomainStates.PAUSED, true), 'paused');
  t.equal(observedStateOf(DomainStates.SHUTOFF, true), 'exited');
  t.equal(observedStateOf(DomainStates.SHUTOFF, false), 'created');
  t.equal(observedStateOf(DomainStates.CRASHED, true), 'exited');
});

t.test('an observed VM keeps its identity; exit facts only when exited', async (t) => {
  const base = {
    metadata: { node: 'n', owner: 'o', blueprint: 'b', workload: 'w', specHash: 'ab'.repeat(32) },
    name: 'zone-b-w-1', domainId: 4, hasRun: true, exitCode: 2, startedAt: 's', finishedAt: 'f',
  };
  t.match(observedOf({ ...base, state: DomainStates.RUNNING }), { id: 'zone-b-w-1', kind: 'vm', state: 'running', exitCode: null, finishedAt: null, workload: 'w' });
  t.match(observedOf({ ...base, state: DomainStates.SHUTOFF }), { state: 'exited', exitCode: 2, finishedAt: 'f' });
});

t.test('events between two polls', async (t) => {
  t.same(domainEvents(view([]), view([['a', running(1)]]), at), [{ type: 'started', id: 'a', at }]);
  t.same(domainEvents(view([['a', running(1)]]), view([['a', running(1)]]), at), []);
  t.same(domainEvents(view([['a', running(1)]]), view([['a', { state: 'exited', domainId: null, exitCode: 3 }]]), at),
    [{ type: 'exited', id: 'a', at, exitCode: 3, oomKilled: false }]);
  t.same(domainEvents(view([['a', running(1)]]), view([['a', running(2)]]), at),
    [{ type: 'exited', id: 'a', at, exitCode: null, oomKilled: false }, { type: 'started', id: 'a', at }], 'restarted between two polls');
  t.same(domainEvents(view([['a', running(1)]]), view([]), at),
    [{ type: 'exited', id: 'a', at, exitCode: null, oomKilled: false }, { type: 'removed', id: 'a', at }]);
  t.same(domainEvents(view([['a', { state: 'exited', domainId: null, exitCode: 0 }]]), view([]), at), [{ type: 'removed', id: 'a', at }]);
});
