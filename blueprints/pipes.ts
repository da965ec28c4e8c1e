// Pipes as a blueprint declares them: `pipes: [{ from: A.stdout, to: B.stdin }]`. Which
// ends of a blueprint's pipes run on a node, the identity both nodes of a cross-node pipe
// derive from it, and which streams of a workload are piped (a fact of the blueprint that
// its normalised workload carries). Pure; the pseudokernel runs the ends
// (appliance/pseudokernel/pipes/).
//
// Identity: a pipe is (owner, from, to) with both ends fully qualified as
// NODE/BLUEPRINT/WORKLOAD.stream (a local end takes this node's id and its blueprint's
// name). Its stream, subject and position key derive from a hash of that, so both nodes
// of a cross-node pipe (each declares it in its own blueprint, with one local end) find
// the same stream. Each node runs the ends that are local to it.
import { createHash } from 'node:crypto';
import { PIPE_END_PATTERN, type Pipe } from './schema.ts';

export type PipeStream = 'stdout' | 'stdin';

export interface PipeEndpoint {
  node: string;
  blueprint: string;
  workload: string;
  stream: PipeStream;
}

/** Where a pipe lives on JetStream. */
export interface PipeIdentity {
  owner: string;
  /** Fully qualified: NODE/BLUEPRINT/WORKLOAD.stdout. */
  from: string;
  /** Fully qualified: NODE/BLUEPRINT/WORKLOAD.stdin. */
  to: string;
  /** 32 hex of sha256(owner, from, to). */
  id: string;
  /** The JetStream stream holding the pipe's bytes. */
  stream: string;
  subject: string;
  /** The consumer's committed position, in the PIPE_POSITIONS bucket. */
  positionKey: string;
}

/** One end of a pipe that runs on this node: `produce` reads the local workload's stdout, `consume` writes its stdin. */
export interface LocalPipeEnd extends PipeIdentity {
  role: 'produce' | 'consume';
  blueprint: string;
  workload: string;
}

/** The blueprint fields pipe resolution reads. */
export interface PipedBlueprint {
  name: string;
  owner: string;
  pipes?: readonly Pipe[];
}

const END_PATTERN = new RegExp(PIPE_END_PATTERN);

/** A blueprint's pipe end, qualified: a bare `WORKLOAD.stream` belongs to `node` and `blueprint`. */
export function parsePipeEnd(end: string, node: string, blueprint: string): PipeEndpoint {
  const m = END_PATTERN.exec(end);
  if (!m) throw new Error(`pipe end "${end}" is not WORKLOAD.stdout|stdin or NODE/BLUEPRINT/WORKLOAD.stdout|stdin`);
  return { node: m[2] ?? node, blueprint: m[3] ?? blueprint, workload: m[4] ?? '', stream: m[5] as PipeStream };
}

export function qualifiedEnd(e: PipeEndpoint): string {
  return `${e.node}/${e.blueprint}/${e.workload}.${e.stream}`;
}

export function pipeIdentity(owner: string, from: string, to: string): PipeIdentity {
  // Newline-separated: no field can hold one, so two different triples never hash alike.
  const id = createHash('sha256').update(`zone-pipe-v1\n${owner}\n${from}\n${to}`).digest('hex').slice(0, 32);
  return { owner, from, to, id, stream: `ZONE_PIPE_${id}`, subject: `zone.pipe.${id}`, positionKey: id };
}

/**
 * The ends of `blueprint`'s pipes that run on `node`: a same-node pipe has two, a
 * cross-node pipe one. An end naming this node and this blueprint is local too. A pipe
 * declared twice gives its ends once.
 */
export function localPipeEnds(node: string, blueprint: PipedBlueprint): LocalPipeEnd[] {
  const ends = new Map<string, LocalPipeEnd>();
  for (const pipe of blueprint.pipes ?? []) {
    const from = parsePipeEnd(pipe.from, node, blueprint.name);
    const to = parsePipeEnd(pipe.to, node, blueprint.name);
    const identity = pipeIdentity(blueprint.owner, qualifiedEnd(from), qualifiedEnd(to));
    for (const [role, end] of [['produce', from], ['consume', to]] as const) {
      if (end.node !== node || end.blueprint !== blueprint.name) continue;
      ends.set(`${role}:${identity.id}`, { ...identity, role, blueprint: blueprint.name, workload: end.workload });
    }
  }
  return [...ends.values()];
}

/** The normalised workload fields that say which of `workload`'s streams are piped (absent when not). */
export function pipedStreams(node: string, blueprint: PipedBlueprint, workload: string): { stdin?: 'pipe'; stdout?: 'pipe' } {
  const ends = localPipeEnds(node, blueprint).filter((e) => e.workload === workload);
  return {
    ...(ends.some((e) => e.role === 'consume') ? { stdin: 'pipe' as const } : {}),
    ...(ends.some((e) => e.role === 'produce') ? { stdout: 'pipe' as const } : {}),
  };
}
