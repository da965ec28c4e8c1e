// zone status, zone node, zone events and zone logs against an in-process node (fake driver).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { waitFor } from '../helpers/wait.ts';
import { box, call, startNode } from '../api/node.ts';

const ZONE = fileURLToPath(new URL('../../cli/zone.sh', import.meta.url));

function zone(args: string[], url: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(ZONE, args, { env: { ...process.env, ZONE_NODE: url }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

t.test('status, node, events and logs show what the node holds', async (t) => {
  const n = await startNode(t);
  t.match(await zone(['status'], n.url), { code: 0, stdout: 'no blueprints on this node\n' });
  await call(`${n.url}/v1/blueprints/shop`, { method: 'PUT', body: n.sign({ name: 'shop', version: 2, workloads: [box('api'), box('db')] }) });
  await waitFor(() => n.appliance.getBlueprint('shop')?.workloads.every((w) => w.state === 'running'), { timeoutMs: 5000, what: 'running' });

  const table = await zone(['status'], n.url);
  t.equal(table.code, 0, table.stderr);
  t.match(table.stdout, /BLUEPRINT │ VERSION │ WORKLOAD │ KIND +│ STATE +│ HEALTH │ RESTARTS │ SINCE │ LAST ERROR/);
  t.match(table.stdout, /│ shop +│ 2 +│ api +│ container │ running │ - +│ 0 +│ \d+s +│/);
  t.match(table.stdout, /│ shop +│ 2 +│ db +│ container │ running │/);
  const json = await zone(['status', 'shop', '--json'], n.url);
  t.match(JSON.parse(json.stdout), { name: 'shop', version: 2, workloads: [{ workload: 'api' }, { workload: 'db' }] });
  t.match(await zone(['status', 'nope'], n.url), { code: 1, stderr: 'zone: refused (404 NOT_FOUND): /params/name: no blueprint nope on this node\n' });

  const node = await zone(['node'], n.url);
  t.match(node.stdout, new RegExp(`^node +${n.appliance.identity.id}\n`));
  t.match(node.stdout, /driver +container +available fake +\(attach\)\n/, 'with what the driver can do');
  t.match(node.stdout, /memory +total 8\.0 GiB/);

  const events = await zone(['events', '--blueprint', 'shop'], n.url);
  t.match(events.stdout, /^ +1 \S+ shop - -> v2: version 2 accepted, signed by operator\n/);
  t.match(events.stdout, /shop\/db pending -> running: /);
  const after = await zone(['events', '--after', '1', '--json'], n.url);
  t.ok(after.stdout.trim().split('\n').every((l) => (JSON.parse(l) as { seq: number }).seq > 1), '--after skips older events');
  t.match(await zone(['events', '--after', 'x'], n.url), { code: 2, stderr: /--after: "x" is not a sequence number/ });

  t.match(await zone(['logs', 'shop/api'], n.url), { code: 0, stdout: 'api running\n' });
  t.match(await zone(['logs', 'shop/api', '--tail', 'many'], n.url), { code: 2 });
  t.match(await zone(['node', '--node', 'not a url'], n.url), { code: 2, stderr: /--node: "not a url" is not a node URL/ });
});
