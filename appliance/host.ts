// What the machine has: logical cpus and memory (systeminformation) and the size of
// the filesystem that holds the data directory (statfs: unlike `df`, which
// systeminformation runs, it cannot hang on another, stuck mount).
import { statfs } from 'node:fs/promises';
import si from 'systeminformation';
import type { Capacity } from './types.ts';

export async function measureHostCapacity(dataDir: string): Promise<Capacity> {
  const [cpu, mem, fs] = await Promise.all([si.cpu(), si.mem(), statfs(dataDir)]);
  return { cpus: cpu.cores, memoryBytes: mem.total, diskBytes: fs.blocks * fs.bsize };
}
