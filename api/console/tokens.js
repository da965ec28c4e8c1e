// Owner tokens made in the browser, byte for byte as lib/tokens.ts makes them: the
// key that signs one is the owner it speaks for. The secret key stays in this page.
const TAG = 'zone-owner-token-v1\n';
const TTL_SECONDS = 30;
const encoder = new TextEncoder();

const base64 = (bytes) => btoa(String.fromCharCode(...bytes));
const base64url = (bytes) => base64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** The key pair in `text`: a key file (JSON with secretKey) or the base64 secret key itself (64 bytes, or a 32-byte seed). */
export function parseKey(text) {
  const trimmed = text.trim();
  let secret = trimmed;
  if (trimmed.startsWith('{')) {
    let data;
    try {
      data = JSON.parse(trimmed);
    } catch {
      throw new Error('the key file is not JSON');
    }
    secret = typeof data?.secretKey === 'string' ? data.secretKey : '';
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(secret)) throw new Error('expected a key file or its secretKey (base64)');
  const bytes = fromBase64(secret);
  const nacl = window.nacl;
  let pair;
  if (bytes.length === 64) pair = nacl.sign.keyPair.fromSecretKey(bytes);
  else if (bytes.length === 32) pair = nacl.sign.keyPair.fromSeed(bytes);
  else throw new Error(`secretKey is ${bytes.length} bytes; expected 64 (or a 32-byte seed)`);
  return { publicKey: `ed25519:${base64(pair.publicKey)}`, secretKey: pair.secretKey };
}

/** The Authorization value of a token of `key` for one call: node `aud`, `method`, URL path `path`. */
export function ownerToken(key, aud, method, path) {
  const iat = Math.floor(Date.now() / 1000);
  const nonce = base64url(crypto.getRandomValues(new Uint8Array(16)));
  const claims = { key: key.publicKey, aud, method, path, iat, exp: iat + TTL_SECONDS, nonce };
  const payload = base64url(encoder.encode(JSON.stringify(claims)));
  const sig = window.nacl.sign.detached(encoder.encode(TAG + payload), key.secretKey);
  return `Zone ${payload}.${base64url(sig)}`;
}
