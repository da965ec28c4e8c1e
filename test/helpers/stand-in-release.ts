// Stand-in releases for supervisor tests: a release folder whose api/main.ts is the
// stand-in appliance (stand-in-appliance.ts), run with this tree's TypeScript loader
// (its node_modules linked), behaving as its stand-in.json says.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ReleaseRef } from '../../appliance/release/state.ts';

// Not release-bundles.ts's: each stand-in imports this file, and should start fast.
const TREE = fileURLToPath(new URL('../..', import.meta.url));

export interface StandInBehaviour {
  version: string;
  /** The store schema it migrates to at start; a store of a later schema makes it exit 1 (as a real appliance refuses a newer store). */
  schema: number;
  /** How long it takes to stop once told to (SIGTERM, or its supervisor gone). */
  stopMs?: number;
  /** Whether it reports its health (false: it never passes the gate). */
  ready?: boolean;
  /** Holds a write transaction on the store this long from just before it reports its health (as an appliance busy with its first pass). */
  holdStoreMs?: number;
}

export const STAND_IN_FILE = 'stand-in.json';

/** Writes the stand-in release `behaviour` to `dir`. */
export function writeStandIn(dir: string, behaviour: StandInBehaviour): ReleaseRef {
  mkdirSync(join(dir, 'api'), { recursive: true });
  symlinkSync(join(TREE, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'api/main.ts'), `import ${JSON.stringify(join(TREE, 'test/helpers/stand-in-appliance.ts'))};\n`);
  writeFileSync(join(dir, STAND_IN_FILE), JSON.stringify(behaviour));
  return { version: behaviour.version, dir };
}
