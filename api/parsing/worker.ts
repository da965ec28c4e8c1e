// A parse worker (runs in a worker thread of the pool in ./pool.ts): turns the bytes
// of a submitted body into a verified blueprint value, or the refusal. Everything that
// costs time in proportion to the body (UTF-8 decoding, YAML or JSON parsing, schema
// validation, canonical encoding, signature checks) happens here, never on the thread
// that serves the API, runs the engine and answers FUSE.
import { workerData } from 'node:worker_threads';
import { ZoneError, type ZoneErrorCode } from '../../lib/errors.ts';
import { decodeBlueprintBytes, parseBlueprintText, type BlueprintFormat } from '../../blueprints/parse.ts';
import type { TrustPolicy } from '../../blueprints/policy.ts';
import { verifyBlueprint } from '../../blueprints/verify.ts';

export interface ParseTask {
  body: Uint8Array;
  format: BlueprintFormat;
}

/** A ZoneError as plain data: errors lose their class and fields between threads. */
export interface Refusal {
  code: ZoneErrorCode;
  message: string;
  field?: string;
}

export type ParseResult = { value: unknown } | { refusal: Refusal };

export interface ParseWorkerData {
  policy: TrustPolicy;
  nodeId: string;
}

const { policy, nodeId } = workerData as ParseWorkerData;

/**
 * The parsed value, once it verifies against the node's trust policy. The store is on
 * the serving thread, so the version check (a replay) is left to appliance.submit(),
 * which verifies again: only bodies signed by trusted keys ever get that far.
 */
export default function parseBody(task: ParseTask): ParseResult {
  try {
    const value = parseBlueprintText(decodeBlueprintBytes(task.body), task.format);
    verifyBlueprint(value, { policy, nodeId, storedVersion: () => null, now: new Date() });
    return { value };
  } catch (err) {
    if (!(err instanceof ZoneError)) throw err;
    return { refusal: { code: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) } };
  }
}
