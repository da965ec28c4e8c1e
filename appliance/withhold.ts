// At start, a node runs a stored blueprint only if the trust policy it has now still
// lets the blueprint's signers act for its owner. A policy that stopped granting an
// owner (a signer removed, an `owners` grant narrowed) does not keep acting for it: the
// blueprint is withheld (its workloads are removed by the engine like any that is no
// longer desired), with an event and a warning that say why, until a newer version
// signed by signers allowed for that owner is accepted. The stored version stays, so
// an older copy still cannot be replayed.
import type { Logger } from 'pino';
import type { TrustPolicy } from '../blueprints/policy.ts';
import { authorizedSigners } from '../blueprints/verify.ts';
import { ZoneError } from '../lib/errors.ts';
import type { EventLog } from './events.ts';
import type { Store } from './store.ts';

export function withholdUnauthorized(store: Store, policy: TrustPolicy, events: EventLog, logger: Logger): void {
  for (const b of store.blueprints()) {
    // A tombstone runs nothing: there is nothing to withhold.
    if (b.deleted) continue;
    try {
      authorizedSigners(b.document, policy);
    } catch (err) {
      if (!(err instanceof ZoneError)) throw err;
      store.withhold(b.owner, b.name);
      const reason = `withheld at start: under the current trust policy, ${err.message}; a newer version signed for owner ${b.owner} by a granted signer runs it again`;
      events.record({ owner: b.owner, blueprint: b.name, workload: null, from: `v${b.version}`, to: 'withheld', reason });
      logger.warn({ blueprint: b.name, owner: b.owner, version: b.version, reason: err.message }, 'stored blueprint withheld: the trust policy no longer authorises its signers for its owner');
    }
  }
}
