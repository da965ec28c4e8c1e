// Pure: the /init a container image gets when it boots as a VM. It runs as PID 1 under the
// stock kernel, prints the markers the driver and the tests look for on the serial
// console, runs the workload's command, and powers the guest off when the command ends
// (the engine, not the guest, decides about restarts).

export interface GuestInit {
  workload: string;
  argv: string[];
  /** Clear values: the caller opened any `sealed:` value. */
  env: Record<string, string>;
  workdir: string | null;
  /** Interfaces to configure (found by MAC); the first one's gateway is the default route. */
  nics?: { mac: string; address: string; gateway: string }[];
  /** Kernel modules in the initrd to load first (the NIC driver, the virtio disk driver). */
  modules?: string[];
  /** How many virtio disks (block volumes) the guest has: /dev/vd* are awaited before the command runs. */
  disks?: number;
  /** Piped streams: the command's stdin / stdout is the virtio-serial port zone.stdin / zone.stdout (stdio-ports.ts). */
  stdio?: { stdin: boolean; stdout: boolean };
  /** The 9p tag of the pseudokernel's share, mounted at /zone before the command runs (its modules among `modules`). */
  zoneTag?: string;
}

/** The line the guest prints when /zone could not be mounted (the command runs without it). */
export const NO_ZONE_MARKER = 'zone: no /zone';

/** The line the guest prints once its command is about to start. */
export function startedMarker(workload: string): string {
  return `zone: started ${workload}`;
}

const EXITED = /zone: exited (\d{1,3})\r?$/gm;

/** The exit code of the last command run, read from console output (null when it did not end). */
export function exitCodeFromConsole(output: string): number | null {
  const codes = [...output.matchAll(EXITED)];
  const last = codes.at(-1);
  if (!last) return null;
  // A later boot whose command has not ended yet means there is no exit code for it.
  if (output.lastIndexOf('zone: started ') > (last.index ?? 0)) return null;
  return Number(last[1]);
}

const STDOUT_COUNT = /zone: stdout (\d{1,16}|unknown)\r?\n/;

/** The byte count of the command's piped stdout the guest printed once it ended; null before. */
export function stdoutCountFromConsole(output: string): number | 'unknown' | null {
  const m = STDOUT_COUNT.exec(output);
  if (!m) return null;
  return m[1] === 'unknown' ? 'unknown' : Number(m[1]);
}

/** POSIX single-quoting: safe for any byte string but NUL. */
export function shellQuote(value: string): string {
  if (value.includes('\0')) throw new RangeError('a NUL byte cannot be passed through the guest shell');
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function guestInitScript(init: GuestInit): string {
  if (init.argv.length === 0) throw new RangeError('the guest needs a command to run');
  const lines = [
    '#!/bin/sh',
    '# zone guest init (PID 1): mount the kernel file systems, run the workload, power off.',
    'mkdir -p /proc /sys /dev /tmp 2>/dev/null',
    'mount -t proc proc /proc 2>/dev/null',
    'mount -t sysfs sysfs /sys 2>/dev/null',
    'mount -t devtmpfs devtmpfs /dev 2>/dev/null',
    'exec </dev/console >/dev/console 2>&1',
    'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'export HOME=/root',
  ];
  for (const [name, value] of Object.entries(init.env)) {
    if (!ENV_NAME.test(name)) throw new RangeError(`environment variable name ${JSON.stringify(name)} is not a shell name`);
    lines.push(`export ${name}=${shellQuote(value)}`);
  }
  for (const module of init.modules ?? []) lines.push(`insmod ${shellQuote(module)} 2>/dev/null`);
  if (init.disks) {
    if (!Number.isInteger(init.disks) || init.disks < 1 || init.disks > 26) throw new RangeError(`disks must be 1 to 26, got ${init.disks}`);
    // The disks appear a moment after virtio_blk loads; a write to /dev/vda before would make a plain file there.
    lines.push(`n=0; while [ "$(ls -d /sys/block/vd* 2>/dev/null | wc -l)" -lt ${init.disks} ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done`,
      `for d in /sys/block/vd*; do [ -b /dev/\${d##*/} ] || echo "zone: no disk \${d##*/}"; done`);
  }
  if (init.nics?.length) lines.push('ip link set lo up');
  init.nics?.forEach((nic, i) => {
    const { mac } = nic;
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac)) throw new RangeError(`interface ${i}: ${JSON.stringify(mac)} is not a MAC address`);
    lines.push(
      // The driver's probe may finish after insmod returns: look for the MAC a little while.
      `dev=; n=0; while [ -z "$dev" ] && [ $n -lt 50 ]; do for d in /sys/class/net/*; do [ "$(cat $d/address 2>/dev/null)" = ${mac} ] && dev=\${d##*/}; done; [ -n "$dev" ] || sleep 0.1; n=$((n+1)); done`,
      `if [ -n "$dev" ]; then ip link set "$dev" up; ip addr add ${shellQuote(nic.address)} dev "$dev"${i === 0 ? `; ip route add default via ${shellQuote(nic.gateway)}` : ''}; else echo "zone: no interface ${mac}"; fi`,
    );
  });
  const stdio = init.stdio?.stdin || init.stdio?.stdout ? init.stdio : null;
  if (stdio) {
    const wanted = [...(stdio.stdin ? ['in'] : []), ...(stdio.stdout ? ['out'] : [])];
    lines.push(
      // debugfs has the ports' connection state and byte counters.
      'mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null',
      `zin=; zout=; n=0; while { ${wanted.map((w) => `[ -z "$z${w}" ]`).join(' || ')}; } && [ $n -lt 100 ]; do`,
      '  for p in /sys/class/virtio-ports/*; do d=/dev/${p##*/}; [ -c "$d" ] || continue; case "$(cat $p/name 2>/dev/null)" in zone.stdin) zin=$d;; zone.stdout) zout=$d;; esac; done',
      `  { ${wanted.map((w) => `[ -z "$z${w}" ]`).join(' || ')}; } && sleep 0.1; n=$((n+1))`,
      'done',
    );
    // The host holds the stdin port from the domain's start; a port it does not hold reads as EOF.
    if (stdio.stdin) lines.push('n=0; while [ -n "$zin" ] && ! grep -q "^host_connected: 1" /sys/kernel/debug/virtio-ports/${zin##*/} 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done');
  }
  if (init.zoneTag !== undefined) {
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(init.zoneTag)) throw new RangeError(`zoneTag ${JSON.stringify(init.zoneTag)} is not a 9p tag ([a-z0-9-], at most 31)`);
    // The virtio-9p channel registers a moment after its module loads: a few tries.
    // cache=none: every read and write goes to the host, so close-to-open holds as in containers.
    lines.push('mkdir -p /zone',
      `n=0; until mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=262144 ${init.zoneTag} /zone 2>/dev/null; do n=$((n+1)); [ $n -ge 50 ] && echo ${shellQuote(NO_ZONE_MARKER)} && break; sleep 0.1; done`);
  }
  if (init.workdir) lines.push(`cd ${shellQuote(init.workdir)} || echo "zone: workdir missing"`);
  lines.push(
    // A line on ttyS1 (the driver's stop()) ends the command gracefully: TERM, then KILL.
    '( read -r _ </dev/ttyS1 && echo "zone: stopping" && kill -TERM -1 && sleep 5 && kill -KILL -1 ) 2>/dev/null &',
    `echo ${shellQuote(startedMarker(init.workload))}`,
  );
  const command = init.argv.map(shellQuote).join(' ');
  if (!stdio) lines.push(command, 'code=$?');
  else {
    const found = [...(stdio.stdin ? ['[ -n "$zin" ]'] : []), ...(stdio.stdout ? ['[ -n "$zout" ]'] : [])].join(' && ');
    lines.push(
      `if ${found}; then ${command}${stdio.stdin ? ' <"$zin"' : ''}${stdio.stdout ? ' >"$zout"' : ''}; code=$?; else echo "zone: no virtio-serial port for the piped stdio"; code=126; fi`,
    );
    if (stdio.stdout) {
      lines.push(
        // Everything the command wrote is counted; the host lets go of the port once it has
        // it all (cat's read ends then), and only then may the guest power off.
        'sent=$(sed -n "s/^bytes_sent: //p" /sys/kernel/debug/virtio-ports/${zout##*/} 2>/dev/null)',
        'if [ -n "$sent" ]; then echo "zone: stdout $sent"; timeout 600 cat "$zout" >/dev/null 2>&1; else echo "zone: stdout unknown"; fi',
      );
    }
  }
  lines.push(
    'echo "zone: exited $code"',
    // busybox poweroff where present; the sysrq trigger works with any userland.
    'sync',
    'poweroff -f 2>/dev/null',
    'echo o > /proc/sysrq-trigger',
    'sleep 5',
    '',
  );
  return lines.join('\n');
}
