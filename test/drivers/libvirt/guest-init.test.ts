import t from 'tap';
import { execFileSync } from 'node:child_process';
import { exitCodeFromConsole, guestInitScript, shellQuote, startedMarker } from '../../../drivers/libvirt/guest-init.ts';

t.test('shell quoting survives quotes, spaces and expansions', async (t) => {
  for (const value of [`it's`, 'a b', '$(touch /tmp/x)', '`id`', '"', '\\', '']) {
    t.equal(execFileSync('sh', ['-c', `printf %s ${shellQuote(value)}`]).toString(), value);
  }
  t.throws(() => shellQuote('a\0b'), RangeError);
});

t.test('the init prints the marker, runs the command with env and workdir, reports the exit code, powers off', async (t) => {
  const script = guestInitScript({ workload: 'vm', argv: ['sh', '-c', 'echo "$GREETING"; exit 3'], env: { GREETING: `it's me` }, workdir: '/tmp' });
  t.match(script, /^#!\/bin\/sh\n/);
  t.match(script, `echo '${startedMarker('vm')}'`);
  t.match(script, `export GREETING='it'\\''s me'`);
  t.match(script, `cd '/tmp'`);
  t.match(script, `'sh' '-c' 'echo "$GREETING"; exit 3'`);
  t.match(script, 'poweroff -f');
  t.throws(() => guestInitScript({ workload: 'vm', argv: [], env: {}, workdir: null }), RangeError);
  t.throws(() => guestInitScript({ workload: 'vm', argv: ['true'], env: { 'A-B': 'x' }, workdir: null }), /not a shell name/);
});

t.test('the exit code is the last one reported, unless the guest booted again since', async (t) => {
  t.equal(exitCodeFromConsole('boot\nzone: started vm\nzone: exited 3\r\n'), 3);
  t.equal(exitCodeFromConsole('zone: started vm\nzone: exited 3\nzone: started vm\nzone: exited 0\n'), 0);
  t.equal(exitCodeFromConsole('zone: started vm\nzone: exited 3\nzone: started vm\n'), null);
  t.equal(exitCodeFromConsole('zone: started vm\n'), null);
  t.equal(exitCodeFromConsole(''), null);
});
