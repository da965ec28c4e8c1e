// The config disk: a vfat labelled ZONECFG with network.conf and data/, written without
// mounting anything, and read back here with mtools as the guest reads it.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { checkDataPath, networkConf, writeConfigDisk } from '../../../cli/node-image/config-disk.ts';

const run = promisify(execFile);
const mtype = async (disk: string, path: string) => (await run('mtype', ['-i', disk, `::${path}`], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } })).stdout;

const dir = await mkdtemp(join(tmpdir(), 'zone-cfg-test-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

t.test('network.conf holds the address, gateway and host name as key=value lines', async (t) => {
  t.equal(networkConf({ address: '10.213.0.11/24', gateway: '10.213.0.1', hostname: 'zcl-local-n1' }),
    'address=10.213.0.11/24\ngateway=10.213.0.1\nhostname=zcl-local-n1\n');
  t.equal(networkConf({ address: '192.168.1.5/32' }), 'address=192.168.1.5/32\n');
});

t.test('a bad network value is refused naming its field (nothing reaches the guest\'s shell)', async (t) => {
  t.throws(() => networkConf({ address: '10.213.0.11' }), /network\.address/);
  t.throws(() => networkConf({ address: '10.213.0.300/24' }), /network\.address/);
  t.throws(() => networkConf({ address: '10.213.0.11/33' }), /network\.address/);
  t.throws(() => networkConf({ address: '10.0.0.1/24\ngateway=1.2.3.4' }), /network\.address/);
  t.throws(() => networkConf({ address: '10.0.0.1/24', gateway: '10.0.0.1; reboot' }), /network\.gateway/);
  t.throws(() => networkConf({ address: '10.0.0.1/24', hostname: 'Bad_Name' }), /network\.hostname/);
});

t.test('data paths stay below the data directory', async (t) => {
  t.doesNotThrow(() => checkDataPath('config.json'));
  t.doesNotThrow(() => checkDataPath('nats/route.crt'));
  for (const bad of ['../node.key', '/etc/passwd', 'a/../../b', '', '.hidden', 'a//b', 'x y']) t.throws(() => checkDataPath(bad), /data\//, bad);
});

t.test('the disk is a vfat labelled ZONECFG holding network.conf and data/, private to its owner', async (t) => {
  const disk = join(dir, 'config.img');
  await writeConfigDisk(disk, {
    network: { address: '10.213.0.11/24', gateway: '10.213.0.1' },
    data: { 'config.json': '{"listen":"10.213.0.11:7700"}\n', 'node.key': Buffer.from('secret'), 'nats/route-secret': 'pw\n' },
  });
  t.equal((await stat(disk)).mode & 0o777, 0o600);
  const { stdout } = await run('blkid', ['-o', 'export', disk]);
  t.match(stdout, /TYPE=vfat/);
  t.match(stdout, /LABEL=ZONECFG/);
  t.equal(await mtype(disk, 'network.conf'), 'address=10.213.0.11/24\ngateway=10.213.0.1\n');
  t.equal(await mtype(disk, 'data/config.json'), '{"listen":"10.213.0.11:7700"}\n');
  t.equal(await mtype(disk, 'data/node.key'), 'secret');
  t.equal(await mtype(disk, 'data/nats/route-secret'), 'pw\n');
  await t.rejects(writeConfigDisk(join(dir, 'bad.img'), { data: { '../x': 'y' } }), /data\/\.\.\/x/);
});
