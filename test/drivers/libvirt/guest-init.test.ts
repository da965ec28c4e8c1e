import t from 'tap';
import { execFileSync } from 'node:child_process';
import { exitCodeFromConsole, guestInitScript, NO_ZONE_MARKER, shellQuote, startedMarker, stdoutCountFromConsole } from '../../../drivers/libvirt/guest-init.ts';

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

t.test('interfaces are loaded, found by MAC and given their address; the first gateway is the default route', async (t) => {
  const script = guestInitScript({
    workload: 'vm', argv: ['true'], env: {}, workdir: null, modules: ['/lib/zone/e1000.ko'],
    nics: [{ mac: '52:54:00:aa:bb:cc', address: '10.88.1.20/24', gateway: '10.88.1.1' }, { mac: '52:54:00:dd:ee:ff', address: '10.9.0.5/16', gateway: '10.9.0.1' }],
  });
  t.match(script, `insmod '/lib/zone/e1000.ko'`);
  t.match(script, '= 52:54:00:aa:bb:cc ]');
  t.match(script, `ip addr add '10.88.1.20/24' dev "$dev"; ip route add default via '10.88.1.1'`);
  t.match(script, `ip addr add '10.9.0.5/16' dev "$dev"; else`, 'no second default route');
  t.ok(script.indexOf('insmod') < script.indexOf(startedMarker('vm')), 'the network is up before the command starts');
  execFileSync('sh', ['-n', '-c', script]);
  t.throws(() => guestInitScript({ workload: 'vm', argv: ['true'], env: {}, workdir: null, nics: [{ mac: '$(reboot)', address: '1.2.3.4/8', gateway: '1.0.0.1' }] }), /not a MAC address/);
});

t.test('/zone is mounted over 9p by its tag before the command starts, and only when asked for', async (t) => {
  const script = guestInitScript({ workload: 'vm', argv: ['true'], env: {}, workdir: '/w', modules: ['/lib/zone/9p.ko'], zoneTag: 'zone' });
  t.match(script, 'mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=262144 zone /zone');
  t.match(script, NO_ZONE_MARKER, 'says so when it cannot');
  t.ok(script.indexOf(`insmod '/lib/zone/9p.ko'`) < script.indexOf('mount -t 9p'), 'its modules are loaded first');
  t.ok(script.indexOf('mount -t 9p') < script.indexOf(`cd '/w'`) && script.indexOf(`cd '/w'`) < script.indexOf(startedMarker('vm')), 'mounted before the workdir and the command');
  execFileSync('sh', ['-n', '-c', script]);
  t.notMatch(guestInitScript({ workload: 'vm', argv: ['true'], env: {}, workdir: null }), '9p');
  t.throws(() => guestInitScript({ workload: 'vm', argv: ['true'], env: {}, workdir: null, zoneTag: 'z;reboot' }), /not a 9p tag/);
});

t.test('the exit code is the last one reported, unless the guest booted again since', async (t) => {
  t.equal(exitCodeFromConsole('boot\nzone: started vm\nzone: exited 3\r\n'), 3);
  t.equal(exitCodeFromConsole('zone: started vm\nzone: exited 3\nzone: started vm\nzone: exited 0\n'), 0);
  t.equal(exitCodeFromConsole('zone: started vm\nzone: exited 3\nzone: started vm\n'), null);
  t.equal(exitCodeFromConsole('zone: started vm\n'), null);
  t.equal(exitCodeFromConsole(''), null);
});

t.test('piped streams are the virtio-serial ports found by name; after the command the guest prints its stdout count and waits for the host', async (t) => {
  const both = guestInitScript({ workload: 'vm', argv: ['sort', '-n'], env: {}, workdir: null, stdio: { stdin: true, stdout: true } });
  execFileSync('sh', ['-n', '-c', both]);
  t.match(both, 'zone.stdin) zin=$d;; zone.stdout) zout=$d;;');
  t.match(both, `if [ -n "$zin" ] && [ -n "$zout" ]; then 'sort' '-n' <"$zin" >"$zout"; code=$?; else echo "zone: no virtio-serial port for the piped stdio"; code=126; fi`);
  t.match(both, 'grep -q "^host_connected: 1"', 'stdin waits (a while) for the host to hold its port');
  t.ok(both.indexOf('zone: stdout $sent') < both.indexOf('zone: exited $code'), 'the count, and the wait for the host, come before the exit line and the power-off');

  const stdinOnly = guestInitScript({ workload: 'vm', argv: ['cat'], env: {}, workdir: null, stdio: { stdin: true, stdout: false } });
  execFileSync('sh', ['-n', '-c', stdinOnly]);
  t.match(stdinOnly, `if [ -n "$zin" ]; then 'cat' <"$zin"; code=$?;`);
  t.notMatch(stdinOnly, 'zone: stdout', 'the console is its stdout: nothing to count');

  const none = guestInitScript({ workload: 'vm', argv: ['cat'], env: {}, workdir: null, stdio: { stdin: false, stdout: false } });
  t.notMatch(none, 'virtio-ports', 'without pipes the console is the stdio');
});

t.test('the stdout count is read from what the guest printed', async (t) => {
  t.equal(stdoutCountFromConsole('zone: started vm\r\nzone: stdout 588895\r\n'), 588895);
  t.equal(stdoutCountFromConsole('zone: stdout unknown\n'), 'unknown');
  t.equal(stdoutCountFromConsole('zone: stdout 12'), null, 'not a whole line yet');
  t.equal(stdoutCountFromConsole('zone: started vm\n'), null);
});
