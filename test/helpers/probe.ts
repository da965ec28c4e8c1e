// What a workload can reach: TCP connects made from inside a running container with
// busybox `nc`, all at once, each bounded by a connect timeout.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** `host:port` -> whether a connection from inside `container` was accepted. */
export async function reachableFrom(container: string, targets: readonly string[], timeoutSeconds = 2): Promise<Map<string, boolean>> {
  const probes = targets.map((t) => {
    const [host, port] = [t.slice(0, t.lastIndexOf(':')), t.slice(t.lastIndexOf(':') + 1)];
    return `(nc -w ${timeoutSeconds} ${host} ${port} </dev/null >/dev/null 2>&1 && echo "open ${t}" || echo "shut ${t}") &`;
  });
  const { stdout } = await execFileP('docker', ['exec', container, 'sh', '-c', `${probes.join('\n')}\nwait`], { timeout: (timeoutSeconds + 20) * 1000 });
  const result = new Map<string, boolean>();
  for (const line of stdout.split('\n')) {
    const [state, target] = line.split(' ');
    if (target && (state === 'open' || state === 'shut')) result.set(target, state === 'open');
  }
  if (result.size !== targets.length) throw new Error(`probing from ${container} answered for ${result.size} of ${targets.length} targets: ${stdout}`);
  return result;
}

/** The targets of `result` that were reachable. */
export function opened(result: Map<string, boolean>): string[] {
  return [...result].filter(([, open]) => open).map(([target]) => target).sort();
}
