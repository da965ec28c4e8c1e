// A system-wide CPU profile of one piece of a benchmark, for where the machine's CPU went
// by process: with ZONE_BENCH_PERF=DIR, `work` runs under `perf record -a` (DIR/NAME.perf;
// read it with `perf report -i DIR/NAME.perf --sort comm`). Without it, `work` just runs.
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export async function profiled<T>(name: string, work: () => Promise<T>): Promise<T> {
  const dir = process.env.ZONE_BENCH_PERF;
  if (!dir) return work();
  const perf = spawn('perf', ['record', '-a', '-g', '-F', '199', '-o', join(dir, `${name}.perf`)], { stdio: 'ignore' });
  const stopped = new Promise((resolve) => perf.once('exit', resolve));
  try {
    return await work();
  } finally {
    perf.kill('SIGINT');
    await stopped;
  }
}
