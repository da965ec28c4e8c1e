import { fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';

const CHILD = new URL('../../../appliance/supervisor/child.ts', import.meta.url).pathname;

t.test('an appliance whose supervisor was gone before it reported (killed while it started) stops at once', async (t) => {
  const script = join(t.testdir(), 'appliance.ts');
  // Reports only once its channel is closed, as an appliance still starting when its supervisor is killed; without a stop it would run on.
  writeFileSync(script, `import { reportToSupervisor } from ${JSON.stringify(CHILD)};
process.send!('up');
const held = setInterval(() => {
  if (process.connected) return;
  clearInterval(held);
  reportToSupervisor(() => new Promise(() => undefined), (why) => {
    process.stdout.write(why);
    process.exit(0);
  });
}, 20);
setTimeout(() => process.exit(3), 10_000);
`);
  const child = fork(script, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  child.once('message', () => child.disconnect());
  const code = await new Promise((resolve) => child.once('exit', resolve));
  t.equal(code, 0);
  t.equal(out, 'supervisor gone');
});
