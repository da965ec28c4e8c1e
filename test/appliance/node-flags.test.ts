// The flags Node runs the appliance with: `npm start` spells them out in package.json, and
// this Node must take them (an unknown V8 flag would stop every start).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { APPLIANCE_NODE_FLAGS } from '../../appliance/node-flags.ts';

t.test('npm start runs the appliance with the node flags, which this Node takes', async (t) => {
  const { scripts } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
  t.match(scripts.start, `node ${APPLIANCE_NODE_FLAGS.join(' ')} --import tsx api/main.ts`);
  const node = spawnSync(process.execPath, [...APPLIANCE_NODE_FLAGS, '-e', 'process.stdout.write(JSON.stringify(process.execArgv))'], { encoding: 'utf8' });
  t.equal(node.status, 0, node.stderr);
  t.same((JSON.parse(node.stdout) as string[]).filter((arg) => APPLIANCE_NODE_FLAGS.includes(arg)), APPLIANCE_NODE_FLAGS);
});
