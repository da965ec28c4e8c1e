// Stream helpers the workload drivers share.
import { Writable } from 'node:stream';

/** A stdin that was not attached: destroyed, so a write fails (through its callback) instead of going nowhere. */
export function refusingStdin(): Writable {
  return new Writable().destroy();
}
