// Two containers made by the Docker driver as a blueprint pipe's ends are (A's stdout
// piped, so attached before its start and logged as a pipe's; B's stdin open once), and
// the copy from A's stdout attach into B's stdin attach without anything between: what a
// pipe costs Docker alone, shared by bench/pipe-cpu.ts (one node) and bench/pipes.ts.
import { pipeline } from 'node:stream/promises';
import { desiredWorkloads } from '../appliance/engine/desired.ts';
import type { localPipeEnds } from '../blueprints/pipes.ts';
import type { ContainerWorkload } from '../blueprints/schema.ts';
import type { DockerDriver } from '../drivers/docker/driver.ts';

export interface PipedPair {
  /** The blueprint of the two, with its pipe. */
  document: Parameters<typeof localPipeEnds>[1];
  /** Container ids. */
  source: string;
  sink: string;
}

/** Makes and starts blueprint `name` on `node`: `source` (its stdout piped) and `sink` (its stdin the pipe's). */
export async function pipedPair(driver: DockerDriver, node: string, owner: string, name: string, commands: { source: string[]; sink: string[] }): Promise<PipedPair> {
  const container = (workload: string, command: string[]): ContainerWorkload => ({ name: workload, kind: 'container', image: 'zone/busybox', command, restart: 'never' });
  const document = {
    name, version: 1, owner, node,
    workloads: [container('source', commands.source), container('sink', commands.sink)],
    pipes: [{ from: 'source.stdout', to: 'sink.stdin' }],
  };
  const specs = desiredWorkloads(node, [{ owner, name, version: 1, deleted: false, acceptedAt: new Date().toISOString(), document }]);
  for (const spec of specs) await driver.ensure(spec);
  const id = (workload: string) => specs.find((spec) => spec.workload === workload)!.id;
  return { document, source: id('source'), sink: id('sink') };
}

/** Copies the pair's A's stdout (from its first byte) into B's stdin until A's ends. */
export async function copyAttached(driver: DockerDriver, pair: PipedPair): Promise<void> {
  const into = await driver.attach(pair.sink, { stdin: true, stdout: false });
  const from = await driver.attach(pair.source, { stdin: false, stdout: true, replay: true });
  await pipeline(from.stdout, into.stdin);
}
