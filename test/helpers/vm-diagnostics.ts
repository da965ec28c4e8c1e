// What a test of a node VM prints when a case fails: the VM's console lives in the test's
// temporary folder, removed at teardown, and a CI failure is read from its log alone.
// Each part answers one question: is the guest alive (console, domain state, vCPU time
// moving), is its NIC passing frames (the tap's counters moving), does it answer ARP
// (the host's neighbour entry, TCP connects), was the host overloaded (load), and what did the
// node itself last do (its events, when it answers).
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);
const VIRSH = ['-c', 'qemu:///system'];
/** The end of the console that is shown: the boot and the node's lines before the failure. */
const CONSOLE_BYTES = 8192;
/**
 * What a TAP comment cannot carry: the console's carriage returns (busybox init writes
 * \r\n) ended the comment and, with it, the failed case's error in tap's report.
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/g;

export interface VmUnderTest {
  domain: string;
  /** The host's bridge the VM's NIC is on. */
  bridge: string;
  address: string;
  /** A TCP port the node listens on (its API). */
  port: number;
  /** The serial console's log file on the host. */
  console: string;
  /** The node's recent events, when its API answers (a failure here is shown as such). */
  events?: () => Promise<string>;
}

const output = (file: string, args: string[]) => run(file, args, { timeout: 15_000 }).then(
  (r) => (r.stdout + r.stderr).trim(),
  (err: Error & { stdout?: string; stderr?: string }) => `(${file} failed: ${(err.stderr || err.stdout || err.message).trim()})`,
);

/** The VM's tap on the host (libvirt's vnetN), from its domain's interfaces. */
async function tapOf(domain: string): Promise<string | null> {
  const list = await output('virsh', [...VIRSH, '-q', 'domiflist', domain]);
  return /^\s*(\S+)\s+bridge\s/m.exec(list)?.[1] ?? null;
}

/**
 * A TCP connect, in place of a ping (the host may have none): the guest's kernel answers
 * it whether or not the process behind the port does. Connected or refused: the guest's
 * network is up; EHOSTUNREACH: it did not answer ARP; a timeout: ARP answered, SYN not.
 */
function connectOnce(host: string, port: number): Promise<string> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 3000 });
    const done = (what: string) => { socket.destroy(); resolve(`${what} in ${Date.now() - started} ms`); };
    socket.once('connect', () => done('connected'));
    socket.once('timeout', () => done('no answer'));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}

/** What moves while the VM runs: its vCPU time, its tap's counters (TX: towards the guest), its NIC's rings. */
async function counters(vm: VmUnderTest, tap: string | null): Promise<string> {
  const parts = [
    `domstats: ${(await output('virsh', [...VIRSH, 'domstats', '--state', '--vcpu', vm.domain])).split('\n').map((l) => l.trim()).filter((l) => /^(state\.|vcpu\.\d+\.(state|time))/.test(l)).join(' ')}`,
  ];
  if (tap) parts.push(`tap: ${(await output('ip', ['-s', 'link', 'show', 'dev', tap])).replace(/\s+/g, ' ')}`);
  // QEMU's view of the NIC's rings (libvirt names the first NIC net0): indexes that stop
  // moving while the guest has queued work show a stalled queue (0 receives, 1 sends).
  for (const queue of [0, 1]) {
    const status = await output('virsh', [...VIRSH, 'qemu-monitor-command', '--hmp', vm.domain, `info virtio-queue-status /machine/peripheral/net0/virtio-backend ${queue}`]);
    parts.push(`virtio-net queue ${queue}: ${status.split('\n').map((l) => l.trim()).filter((l) => /^(inuse|used_idx|signalled_used|last_avail_idx|shadow_avail_idx):/.test(l)).map((l) => l.replace(/\s+/g, ' ')).join(', ')}`);
  }
  return parts.join('\n');
}

/** Everything above as one text, for t.comment. */
export async function vmDiagnostics(vm: VmUnderTest): Promise<string> {
  const tap = await tapOf(vm.domain);
  const before = await counters(vm, tap);
  const tries = [];
  for (let i = 0; i < 3; i++) tries.push(await connectOnce(vm.address, vm.port));
  const after = await counters(vm, tap);
  const text = await readFile(vm.console, 'utf8').catch((err: Error) => `(no console: ${err.message})`);
  const events = vm.events ? await vm.events().catch((err: Error) => `(the node did not answer: ${err.message})`) : '(not asked)';
  return [
    `--- diagnostics of ${vm.domain} (${vm.address}) at ${new Date().toISOString()}`,
    `host load: ${(await readFile('/proc/loadavg', 'utf8')).trim()}`,
    `domstate: ${await output('virsh', [...VIRSH, 'domstate', '--reason', vm.domain])}`,
    `neighbour: ${await output('ip', ['neigh', 'show', 'dev', vm.bridge]) || '(none)'}`,
    `bridge ports: ${(await output('ip', ['-o', 'link', 'show', 'master', vm.bridge])).replace(/\\?\s+/g, ' ')}`,
    `tap ${tap ?? '(none found)'}, before and after three TCP connects:\n${before}\n${after}`,
    `TCP connects to ${vm.address}:${vm.port}: ${tries.join('; ')}`,
    `the node's recent events: ${events}`,
    `boots on the console: ${text.split('\nzone: booted').length - 1}`,
    `the console's last ${CONSOLE_BYTES} bytes:\n${text.slice(-CONSOLE_BYTES)}`,
    `--- end of diagnostics of ${vm.domain}`,
  ].join('\n').replace(CONTROL, '');
}
