// A stand-in for an owner's grid image store in driver tests: archives or disks on this
// host by digest, served to one owner only, every fetch counted.
import { copyFile } from 'node:fs/promises';
import type { ImageKind, ImageSource } from '../../drivers/contract.ts';

export interface GridStandIn {
  source: ImageSource;
  /** Digest -> file; tests add (tampered, forged) entries as they go. */
  files: Map<string, string>;
  /** How many fetches were asked. */
  fetches(): number;
}

export function gridStandIn(owner: string, kind: ImageKind, entries: [string, string][]): GridStandIn {
  const files = new Map(entries);
  let fetches = 0;
  const source: ImageSource = {
    kindOf: async (who, digest) => (who === owner && files.has(digest) ? kind : null),
    fetch: async (who, digest, path) => {
      fetches++;
      const from = who === owner ? files.get(digest) : undefined;
      if (!from) return false;
      await copyFile(from, path);
      return true;
    },
  };
  return { source, files, fetches: () => fetches };
}
