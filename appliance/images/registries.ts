// The node config's registries: where images that are neither on the node nor in the
// grid's store are pulled from, in the order the config lists them. A password is never
// in the config in clear: it is sealed to the node (`zone seal`, owner = the node's own
// signing key, field `registries/HOST/password`) and opened only at the pull that needs it.
import { isUnboundSealed } from '../../blueprints/seal.ts';
import { SEALED_PATTERN } from '../../blueprints/schema.ts';
import { REGISTRY_HOST_PATTERN, registryPasswordField } from '../../blueprints/sealed-fields.ts';
import type { RegistryAccess } from '../../drivers/contract.ts';
import { ZoneError } from '../../lib/errors.ts';

/** One entry of the config file's `registries`, as the schema lets it through. */
export interface RegistryFileEntry {
  url: string;
  username?: string;
  password?: string;
}

export interface RegistryConfig {
  /** `host[:port][/namespace]`, as written (without https://). */
  url: string;
  host: string;
  namespace: string;
  username: string | null;
  /** `sealed:v2:...`; null with no username (anonymous pulls). */
  password: string | null;
}

/** Docker's path components: lower-case letters and digits, joined by one `.`, `_`, `__` or `-`s. */
const NAMESPACE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const HOST = new RegExp(REGISTRY_HOST_PATTERN);
const SEAL_HINT = 'zone seal --node-key BOXKEY --node ID --owner SIGNINGKEY --blueprint \'*\' --field registries/HOST/password (the three keys from GET /v1/node)';

/** The registries of the config at `source`; errors name the entry and field (and never hold a password). */
export function parseRegistries(entries: readonly RegistryFileEntry[], source: string): RegistryConfig[] {
  const seen = new Set<string>();
  return entries.map((entry, i) => {
    const fail = (field: string, reason: string) => new ZoneError('INVALID', `${source}: registries[${i}].${field}: ${reason}`, `/registries/${i}/${field}`);
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(entry.url)?.[1]?.toLowerCase();
    if (scheme !== undefined && scheme !== 'https') {
      throw fail('url', `"${entry.url}": give host[:port][/namespace] (or https://...); dockerd chooses the protocol itself, plain http only for registries its insecure-registries list (loopback is one)`);
    }
    const url = entry.url.replace(/^https:\/\//i, '').replace(/\/+$/, '');
    const slash = url.indexOf('/');
    const host = slash < 0 ? url : url.slice(0, slash);
    const namespace = slash < 0 ? '' : url.slice(slash + 1);
    const port = Number(/:([0-9]+)$/.exec(host)?.[1] ?? '1');
    if (!HOST.test(host) || port < 1 || port > 65535) throw fail('url', `"${entry.url}": the host is not host[:port] in lower case (e.g. registry.example:5000)`);
    if (namespace && !NAMESPACE.test(namespace)) throw fail('url', `"${entry.url}": the namespace after the host is not a lower-case repository path (e.g. registry.example/team)`);
    if (seen.has(url)) throw fail('url', `"${url}" is listed twice`);
    seen.add(url);
    if ((entry.username === undefined) !== (entry.password === undefined)) {
      throw fail(entry.username === undefined ? 'username' : 'password', 'give both username and password, or neither (anonymous pulls)');
    }
    if (entry.username !== undefined && !/^[^\s:\p{Cc}]{1,256}$/u.test(entry.username)) throw fail('username', 'must be 1 to 256 characters without spaces, control characters or ":"');
    const password = entry.password;
    if (password !== undefined) {
      if (!new RegExp(SEALED_PATTERN).test(password)) throw fail('password', `is not a sealed value: a registry password is kept only sealed to the node; seal it with ${SEAL_HINT}`);
      if (isUnboundSealed(password)) throw fail('password', `is sealed in the old format (v1), not bound to a place: re-seal it with ${SEAL_HINT}`);
    }
    return { url, host, namespace, username: entry.username ?? null, password: password ?? null };
  });
}

/**
 * What the drivers pull with: each registry's credentials open at the pull, bound to the
 * node's own key as owner and to field `registries/HOST/password`, so a sealed value
 * copied from a blueprint, or to another registry's entry, does not open.
 */
export function registryAccess(registries: readonly RegistryConfig[], node: { signingKey: string; open(sealed: string, place: { owner: string; blueprint: string; field: string }): string }): RegistryAccess[] {
  return registries.map((r) => ({
    host: r.host,
    namespace: r.namespace,
    credentials: () => {
      if (r.username === null || r.password === null) return null;
      try {
        return { username: r.username, password: node.open(r.password, { owner: node.signingKey, blueprint: '*', field: registryPasswordField(r.host) }) };
      } catch (err) {
        // openSealed's reasons never hold the clear value.
        throw new ZoneError('POLICY', `the node config's password for registry ${r.url} does not open here: ${(err as Error).message}; seal it with ${SEAL_HINT}`, '/registries');
      }
    },
  }));
}
