// dockerode errors -> the contract's errors: unreachable dockerd is EngineUnavailableError,
// a request dockerd refuses as written is WorkloadSpecError naming the likely field.
import { EngineUnavailableError, WorkloadSpecError } from '../contract.ts';

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'EACCES', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH']);

interface DockerodeError {
  code?: unknown;
  statusCode?: unknown;
  json?: unknown;
  message?: unknown;
}

export function statusCodeOf(err: unknown): number | undefined {
  const status = (err as DockerodeError | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** Docker's own message (`{"message": ...}`), or the error's. */
export function dockerMessageOf(err: unknown): string {
  const e = err as DockerodeError | null;
  const json = e?.json as { message?: unknown } | null | undefined;
  if (typeof json?.message === 'string') return json.message;
  return typeof e?.message === 'string' ? e.message : String(err);
}

export function isUnreachable(err: unknown): boolean {
  if (statusCodeOf(err) !== undefined) return false;
  const e = err as DockerodeError | null;
  return (typeof e?.code === 'string' && UNREACHABLE_CODES.has(e.code)) || /socket hang up/i.test(dockerMessageOf(err));
}

/** The error to throw for a failed engine call: EngineUnavailableError when dockerd was not reached. */
export function engineErrorOf(err: unknown, socketPath: string): unknown {
  if (err instanceof EngineUnavailableError || !isUnreachable(err)) return err;
  return new EngineUnavailableError('docker', `dockerd not reachable at ${socketPath}: ${dockerMessageOf(err)}`, { cause: err });
}

// Docker's messages for requests that cannot work as written, and the spec field at fault.
const FIELD_HINTS: [RegExp, string][] = [
  [/port is already allocated|address already in use|published port|exposed port/i, 'ports'],
  [/executable file not found|exec format error|exec: /i, 'command'],
  [/mount|bind source/i, 'mounts'],
  [/device/i, 'devices'],
  [/capabilit/i, 'capabilities'],
  [/memory/i, 'resources.memory'],
  [/cpu/i, 'resources.cpus'],
  [/pids/i, 'resources.pids'],
  [/working dir|workdir|cwd/i, 'workdir'],
  [/health/i, 'health'],
];

/**
 * A WorkloadSpecError when dockerd refused the request as written (400, or a start that
 * failed on the port, command or mounts); null for anything else (retry later).
 */
export function specErrorOf(workload: string, err: unknown): WorkloadSpecError | null {
  const status = statusCodeOf(err);
  const message = dockerMessageOf(err);
  const hint = FIELD_HINTS.find(([pattern]) => pattern.test(message));
  if (status === 400 || (status === 500 && hint)) return new WorkloadSpecError(workload, hint?.[1] ?? 'definition', `dockerd refused it: ${message}`);
  return null;
}
