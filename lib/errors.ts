// Domain errors: a code the API maps to an HTTP status, the field they concern, and
// a message that says what was wrong and what would be accepted. Never a secret.

export const ZONE_ERROR_CODES = [
  'INVALID',        // 400: the input does not match the format
  'SIGNATURE',      // 401: no valid signature / signatures do not verify
  'POLICY',         // 403: trust policy or node policy refuses it
  'NOT_FOUND',      // 404
  'STALE',          // 409: version not greater than the stored one (a replay)
  'CONFLICT',       // 409: the state of the target forbids it (a directory where a file is wanted, ...)
  'TOO_LARGE',      // 413
  'CAPACITY',       // 422: does not fit the node
  'TOO_MANY',       // 429: a bound on concurrent or stored things is reached (streams, owners, ...)
  'UNAVAILABLE',    // 503: an engine or dependency is not there
  'NO_SPACE',       // 507: the node's disk or a storage quota is full; nothing was changed
] as const;
export type ZoneErrorCode = typeof ZONE_ERROR_CODES[number];

export class ZoneError extends Error {
  constructor(
    readonly code: ZoneErrorCode,
    message: string,
    /** JSON-pointer-like path of the field concerned, e.g. `/workloads/1/resources/memory`. */
    readonly field?: string,
    /** Extra facts for the client (numbers of a capacity refusal, ...). */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ZoneError';
  }
}
