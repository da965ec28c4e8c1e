// libvirt errors -> what the driver does with them. The binding loses libvirt's error
// codes (always -1), so "not found" is told by its message.
import { EngineUnavailableError } from '../contract.ts';

export function libvirtMessageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function isNoDomain(err: unknown): boolean {
  return /Domain not found|no domain with matching/i.test(libvirtMessageOf(err));
}

/** "already running" / "not running": a race with someone else's start or stop, not a failure. */
export function isStateRace(err: unknown): boolean {
  return /domain is already running|domain is not running|Requested operation is not valid/i.test(libvirtMessageOf(err));
}

export function unavailable(uri: string, err: unknown): EngineUnavailableError {
  return new EngineUnavailableError('libvirt', `libvirtd not reachable at ${uri}: ${libvirtMessageOf(err)}`, { cause: err });
}
