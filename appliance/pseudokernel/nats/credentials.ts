// The secrets nats-server's authentication rests on, as files: the node's client NKEY
// (made on first start, kept 0600 beside the server's store; the appliance's own
// connections are the only clients the server takes) and the grid's route password
// (made by the operator's tooling, e.g. `zone cluster up`). A file that others may
// read is refused, like the node's identity keys.
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { nkeys } from '@nats-io/transport-node';
import { assertPrivateFile } from '../../../blueprints/keys.ts';

export interface ClientKey {
  /** The NKEY seed (`SU...`): what the client signs the server's nonce with. */
  seed: Uint8Array;
  /** The public NKEY (`U...`) the server's config lists. */
  publicKey: string;
}

/** The client NKEY at `path`, created (mode 0600) when there is none. */
export function loadOrCreateClientKey(path: string): ClientKey {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return clientKeyOf(path, readSecretFile(path, 'NATS client key'));
  }
  try {
    const pair = nkeys.createUser();
    writeSync(fd, Buffer.from(pair.getSeed()));
    return { seed: pair.getSeed(), publicKey: pair.getPublicKey() };
  } finally {
    closeSync(fd);
  }
}

function clientKeyOf(path: string, text: string): ClientKey {
  const seed = new TextEncoder().encode(text);
  try {
    const pair = nkeys.fromSeed(seed);
    const publicKey = pair.getPublicKey();
    if (!publicKey.startsWith('U')) throw new Error('not a user seed');
    return { seed, publicKey };
  } catch {
    throw new Error(`${path}: not a NATS user NKEY seed (SU...); delete it to have a new one made at the next start`);
  }
}

/** The trimmed content of a secret file; throws naming the file when others may read it or it is empty. */
export function readSecretFile(path: string, what: string): string {
  assertPrivateFile(path, `${path} (${what})`);
  const text = readFileSync(path, 'utf8').trim();
  if (text === '') throw new Error(`${path} (${what}) is empty`);
  return text;
}
