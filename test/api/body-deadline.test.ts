// Request bodies and the API's bound (600 ms here, 30 s in a node): a request trickled past
// it is cut with 408, as Node cut it before; an authorised upload (a release bundle) may
// take as long as it needs while its bytes keep coming at the floor's mean rate (4 KiB/s
// here, 16 KiB/s in a node), and is cut when they stop for the bound or fall below it. Raw sockets send on a schedule: the schedule is the input under test.
import t from 'tap';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { buildServer } from '../../api/server.ts';
import type { ReleaseAccepted } from '../../appliance/types.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { makeReadToken } from '../../lib/tokens.ts';
import { StubAppliance } from './stub-appliance.ts';

const BOUND_MS = 600;
const signer = generateSigningKeyPair();
const accepted: ReleaseAccepted = { version: '0.2.0', digest: `sha256:${'a'.repeat(64)}`, from: '0.1.0', signers: ['operator'], stored: false };
/** What the appliance read of each upload: its bytes, or how its stream ended. */
const received: { bytes: number; error: string | null }[] = [];
const stub = Object.assign(new StubAppliance(), {
  releaseUploaders: () => [signer.publicKey],
  installRelease: async (body: Readable) => {
    const got = { bytes: 0, error: null as string | null };
    received.push(got);
    try {
      for await (const chunk of body) got.bytes += (chunk as Buffer).length;
    } catch (err) {
      got.error = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw err;
    }
    return accepted;
  },
});
/** The steady upload below sends 5 KiB/s; the trickle 2 KiB/s. */
const MIN_RATE = 4 * 1024;
const server = await buildServer(stub, { requestTimeoutMs: BOUND_MS, uploadMinBytesPerSecond: MIN_RATE });
await server.listen({ host: '127.0.0.1', port: 0 });
t.teardown(() => server.close());
const { port } = server.server.address() as AddressInfo;

/** Sends `head`, then `parts` one per `everyMs`, and what the server answered until it closed (with when). */
function trickle(head: string, parts: Buffer[], everyMs: number): Promise<{ answer: string; ms: number; sent: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    const next = () => {
      const part = parts[sent];
      if (!part || socket.destroyed) return;
      socket.write(part);
      sent += 1;
      timer = setTimeout(next, everyMs);
    };
    socket.once('connect', () => {
      socket.write(head);
      timer = setTimeout(next, everyMs);
    });
    socket.on('data', (d) => { answer += String(d); });
    socket.on('error', (err) => { if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET' && (err as NodeJS.ErrnoException).code !== 'EPIPE') reject(err); });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ answer, ms: performance.now() - started, sent });
    });
    // The answer came and the request is over: the test has what it needs.
    socket.on('data', () => { if (/\r\n\r\n/.test(answer) && sent === parts.length) socket.end(); });
  });
}

const releaseHead = (length: number) => [
  'PUT /v1/node/release HTTP/1.1', 'host: node', 'content-type: application/gzip', `content-length: ${length}`,
  `authorization: ${makeReadToken(signer, { aud: 'stub', method: 'PUT', path: '/v1/node/release' })}`, '', '',
].join('\r\n');
const parts = (n: number) => Array.from({ length: n }, () => Buffer.alloc(1024, 7));

t.test('an authorised upload that keeps its bytes coming is taken whole, however long it takes', async (t) => {
  const n = 16; // 16 parts 200 ms apart: about 3.2 s, five times the bound
  const { answer, ms } = await trickle(releaseHead(n * 1024), parts(n), 200);
  t.match(answer, /^HTTP\/1\.1 202 /, `answered after ${ms.toFixed(0)} ms`);
  t.ok(ms > 4 * BOUND_MS, 'it took longer than the bound');
  t.same(received.pop(), { bytes: n * 1024, error: null });
});

t.test('an authorised upload whose bytes stop for the bound is cut, and the appliance sees its stream end short', async (t) => {
  // 4 parts of 8 arrive, then nothing.
  const { answer, ms, sent } = await trickle(releaseHead(8 * 1024), [...parts(4)], 100);
  t.equal(sent, 4);
  t.match(answer, /^HTTP\/1\.1 408 /);
  t.ok(ms < 400 + BOUND_MS + 2000, `cut after ${ms.toFixed(0)} ms`);
  t.match(received.pop(), { bytes: 4 * 1024, error: String });
});

t.test('an authorised upload that never pauses for the bound but trickles below the mean rate is cut', async (t) => {
  // 1 KiB each 500 ms (2 KiB/s, under the 4 KiB/s floor), gaps shorter than the bound: about 10 s for all 20.
  const { answer, ms, sent } = await trickle(releaseHead(20 * 1024), parts(20), 500);
  t.match(answer, /^HTTP\/1\.1 408 /);
  t.ok(sent < 20, `cut after ${ms.toFixed(0)} ms, ${sent} of 20 parts sent`);
  t.match(received.pop(), { error: String });
});

t.test('any other request must be in within the bound: a blueprint trickled steadily is cut with 408', async (t) => {
  const head = ['POST /v1/blueprints HTTP/1.1', 'host: node', 'content-type: application/json', `content-length: ${20 * 1024}`, '', ''].join('\r\n');
  const { answer, ms, sent } = await trickle(head, parts(20), 100);
  t.match(answer, /^HTTP\/1\.1 408 /);
  t.ok(sent < 20, `cut after ${ms.toFixed(0)} ms, ${sent} of 20 parts sent`);
});

t.test('an upload without a release signer\'s token is refused before its body, whose rest keeps the plain bound', async (t) => {
  // Refused at once; the body that keeps coming is read off (so that the client gets its 401) only within the bound.
  const head = ['PUT /v1/node/release HTTP/1.1', 'host: node', 'content-type: application/gzip', `content-length: ${16 * 1024}`, '', ''].join('\r\n');
  const before = received.length;
  const { answer, ms, sent } = await trickle(head, parts(16), 200);
  t.match(answer, /^HTTP\/1\.1 401 /);
  t.ok(sent < 16, `the connection cut after ${ms.toFixed(0)} ms, ${sent} of 16 parts sent`);
  t.equal(received.length, before, 'the appliance never saw it');
});

t.test('headers trickled past the bound are cut', async (t) => {
  const { answer, ms } = await trickle('GET /healthz HTTP/1.1\r\n', Array.from({ length: 30 }, () => Buffer.from('x-slow: 1\r\n')), 100);
  t.match(answer, /^HTTP\/1\.1 408 /);
  t.ok(ms < 3000 + BOUND_MS, `cut after ${ms.toFixed(0)} ms`);
});
