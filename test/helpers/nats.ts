// One nats-server (JetStream on, store in a temporary folder) for a test file, on a
// free loopback port, started through the appliance's own supervisor; the connection
// is closed, the server stopped and its store removed when the file's tests end.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import t from 'tap';
import { NatsServer } from '../../appliance/pseudokernel/nats/nats-server.ts';
import { freeLoopbackPorts } from './ports.ts';

export async function natsForFile(name: string, logger: Logger): Promise<NatsConnection> {
  const dir = mkdtempSync(join(tmpdir(), `zone-${name}-`));
  const [port] = (await freeLoopbackPorts(1)) as [number];
  const server = new NatsServer({ dataDir: join(dir, 'nats'), serverName: name, host: '127.0.0.1', port, logger, startTimeoutMs: 10_000 });
  let nc: NatsConnection | null = null;
  t.teardown(async () => {
    await nc?.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await server.start();
  nc = await server.connect();
  return nc;
}
