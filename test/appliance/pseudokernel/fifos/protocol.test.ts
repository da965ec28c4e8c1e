// The pure part of FIFOs across nodes: identities, the relays' messages and the helper's lines.
import t from 'tap';
import {
  announcementOf, fifoIdentity, gridPathOf, joinRequestOf, joinSubject, sessionStream, sessionSubject, waiterReportOf,
} from '../../../../appliance/pseudokernel/fifos/protocol.ts';

const OWNER = 'ed25519:T3duZXI=';

t.test('a FIFO has one identity for its owner and path, on every node', async (t) => {
  const fifo = fifoIdentity(OWNER, '/p');
  t.same(fifoIdentity(OWNER, '/p'), fifo);
  t.not(fifoIdentity(OWNER, '/q').id, fifo.id);
  t.not(fifoIdentity('ed25519:b3RoZXI=', '/p').id, fifo.id, 'another owner\'s FIFO at the same path is another FIFO');
  t.match(fifo.subject, /^zone\.fifo\.[0-9a-f]{32}$/);
  t.match(joinSubject(fifo, 'n1'), new RegExp(`^${fifo.subject.replaceAll('.', '\\.')}\\.join\\.[0-9a-f]{16}$`));
});

t.test('the helper\'s lines are read, and anything else is refused', async (t) => {
  const rows: [string, unknown][] = [
    ['wait 123 39 W /fs/p', { kind: 'wait', tid: 123, dev: 39, direction: 'write', path: '/fs/p' }],
    ['wait 7 2097350 R /fs/dir/p', { kind: 'wait', tid: 7, dev: 2097350, direction: 'read', path: '/fs/dir/p' }],
    ['done 123', { kind: 'done', tid: 123 }],
    ['wait 123 39 X /fs/p', null],
    ['wait 123 39 R fs/p', null],
    ['wait 123 99999999999999999999 R /fs/p', null],
    ['done', null],
    ['', null],
  ];
  for (const [line, expected] of rows) t.same(waiterReportOf(line), expected, JSON.stringify(line));
});

t.test('only paths below fs/ of a /zone mount are FIFOs the relay joins', async (t) => {
  t.equal(gridPathOf('/fs/p'), '/p');
  t.equal(gridPathOf('/fs/a/b'), '/a/b');
  t.equal(gridPathOf('/fs'), null);
  t.equal(gridPathOf('/proc/x'), null);
  t.equal(gridPathOf('/fsx/p'), null);
});

t.test('announcements and join requests from the wire are checked field by field', async (t) => {
  t.same(announcementOf('{"node":"187b3a490ccd93ff","direction":"read"}'), { node: '187b3a490ccd93ff', direction: 'read' });
  for (const bad of ['{"node":"a b","direction":"read"}', '{"node":"n","direction":"both"}', '[]', 'null', 'not json']) {
    t.equal(announcementOf(bad), null, bad);
  }
  const session = 'ab'.repeat(16);
  t.same(joinRequestOf(JSON.stringify({ session, stream: sessionStream(session), subject: sessionSubject(session) })), { session, stream: sessionStream(session), subject: sessionSubject(session) });
  t.equal(joinRequestOf(JSON.stringify({ session, stream: 'KV_other', subject: sessionSubject(session) })), null, 'a join never names another stream');
  t.equal(joinRequestOf(JSON.stringify({ session: 'x', stream: sessionStream('x'), subject: sessionSubject('x') })), null);
});
