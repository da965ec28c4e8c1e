// The node's nats-server as a supervised child process: it holds the pseudokernel's
// shared state (JetStream KV, object store, streams). start() resolves once JetStream
// answers; an unexpected exit is restarted with a doubling, capped backoff; stop()
// ends it by PID. A server left running by a previous appliance process (one that
// died without stopping it) is recognised by its pid file and replaced. The server takes
// only this node's client NKEY (DATA/nats/client.nk, made on first start): connect() signs
// in with it, so every connection of the appliance goes through here.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, nkeyAuthenticator, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { commandLine, pollUntil, processRuns, signal, stopProcess } from '../../../lib/processes.ts';
import { ranStably, restartDelayMs, waitingState, type BackoffPolicy } from '../../../lib/backoff.ts';
import { natsServerConfig, type NatsClusterOptions } from './server-config.ts';
import { loadOrCreateClientKey, readSecretFile, type ClientKey } from './credentials.ts';

export interface NatsServerOptions {
  /** The server's own directory: its config, log, pid file and JetStream store. Created if missing. */
  dataDir: string;
  /** Unique in the cluster. */
  serverName: string;
  /** Where clients connect. */
  host: string;
  port: number;
  /** Join these servers into one JetStream cluster. */
  cluster?: NatsClusterOptions;
  /** JetStream's bounds, in bytes (nats-server's defaults otherwise). */
  maxFileStoreBytes?: number;
  maxMemoryStoreBytes?: number;
  logger: Logger;
  /** The nats-server executable; `nats-server` from $PATH by default. */
  binary?: string;
  /** How long start() waits for JetStream to answer (a cluster also waits for its peers). */
  startTimeoutMs?: number;
  /**
   * In a cluster: a start whose server takes clients but whose JetStream has not answered
   * within startTimeoutMs succeeds (logged), as JetStream answers once enough peers are up
   * (a site powering up one node at a time, half a cluster upgrading). Without it, such a
   * start fails: what a server that must join a cluster (a test, a check) wants to know.
   */
  quorumMayFollow?: boolean;
  /** How long stop() waits after SIGTERM before SIGKILL. */
  stopGraceMs?: number;
  restartBackoff?: BackoffPolicy;
}

const DEFAULT_START_TIMEOUT_MS = 20_000;
const DEFAULT_STOP_GRACE_MS = 10_000;
/** How long a client's first connect (dial and handshake) may take; nats.js's default is 20 s. */
const FIRST_CONNECT_TIMEOUT_MS = 120_000;
/** A server that ran a minute was healthy: its next crash is restarted quickly again. */
const NATS_RESTART_BACKOFF: BackoffPolicy = { firstMs: 250, maxMs: 30_000, stableMs: 60_000, crashloopAfter: 5 };
const LOG_TAIL_LINES = 10;

export class NatsServer {
  readonly configPath: string;
  readonly logPath: string;
  readonly pidPath: string;
  /** The node's client NKEY seed, 0600: the one client identity the server takes. */
  readonly credentialsPath: string;
  private clientKey: ClientKey | null = null;
  private child: ChildProcess | null = null;
  /** Resolves with how the current child ended. */
  private exited: Promise<string> = Promise.resolve('not started');
  /** start() succeeded and stop() was not called: exits are restarted. */
  private ready = false;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private attempt = 0;
  private startedAt: string | null = null;

  constructor(private readonly options: NatsServerOptions) {
    this.configPath = join(options.dataDir, 'nats-server.conf');
    this.logPath = join(options.dataDir, 'nats-server.log');
    this.pidPath = join(options.dataDir, 'nats-server.pid');
    this.credentialsPath = join(options.dataDir, 'client.nk');
  }

  /** The client URL. */
  get url(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `nats://${host}:${this.options.port}`;
  }

  /** The running server's PID, or null between a crash and its restart. */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Writes the config, starts the server and resolves once JetStream answers. */
  async start(): Promise<void> {
    if (this.child || this.ready) throw new Error(`nats-server ${this.options.serverName} is already started`);
    mkdirSync(this.options.dataDir, { recursive: true, mode: 0o700 });
    const clientKey = loadOrCreateClientKey(this.credentialsPath);
    const cluster = this.options.cluster;
    const config = natsServerConfig({
      serverName: this.options.serverName,
      host: this.options.host,
      port: this.options.port,
      storeDir: join(this.options.dataDir, 'store'),
      pidFile: this.pidPath,
      clientNkey: clientKey.publicKey,
      ...(cluster ? { cluster, routePassword: readSecretFile(cluster.routeSecretFile, 'NATS route password') } : {}),
      ...(this.options.maxFileStoreBytes ? { maxFileStoreBytes: this.options.maxFileStoreBytes } : {}),
      ...(this.options.maxMemoryStoreBytes ? { maxMemoryStoreBytes: this.options.maxMemoryStoreBytes } : {}),
    });
    // nats-server would use a route key that others may read: refuse it, as the route password.
    if (cluster?.tls) readSecretFile(cluster.tls.keyFile, 'NATS route TLS key');
    this.clientKey = clientKey;
    await this.stopLeftover();
    writeFileSync(this.configPath, config, { mode: 0o600 });
    this.stopping = false;
    this.attempt = 0;
    const child = this.spawnChild();
    try {
      await this.untilReady();
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.ready = true;
    this.options.logger.info({ server: this.options.serverName, pid: child.pid, url: this.url }, 'nats-server ready');
  }

  /** SIGTERM by PID, SIGKILL after the grace period; resolves once it has exited. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.ready = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const pid = this.child?.pid;
    if (pid === undefined) return;
    const grace = this.options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
    signal(pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace over'>((resolve) => (timer = setTimeout(() => resolve('grace over'), grace)));
    if ((await Promise.race([this.exited, graceOver])) === 'grace over') {
      this.options.logger.warn({ server: this.options.serverName, pid, graceMs: grace }, 'nats-server did not stop after SIGTERM; killing it');
      signal(pid, 'SIGKILL');
      await this.exited;
    }
    clearTimeout(timer);
  }

  /**
   * A client connection to this server that reconnects forever. Without async traces: the
   * client otherwise builds an Error, stack and all, for every request and publish (a pipe's
   * profile showed it), to decorate the rare timeout. The first connect may take long: on a
   * node VM under TCG the appliance's start kept its event loop busy past the client's 20 s
   * default, the connect failed with a TimeoutError and the appliance exited (test/cli/vm-cluster.test.ts).
   */
  connect(name = `zone-${this.options.serverName}`): Promise<NatsConnection> {
    return connect({ ...this.clientOptions(), name, maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: true, timeout: FIRST_CONNECT_TIMEOUT_MS });
  }

  /** Where and as whom a client of this node connects (known once start() has read the key). */
  private clientOptions(): ConnectionOptions {
    const key = this.clientKey;
    if (!key) throw new Error(`nats-server ${this.options.serverName} is not started: no client key read yet`);
    // Only this server: the others' client ports are their nodes' loopback, not reachable from here.
    return { servers: this.url, authenticator: nkeyAuthenticator(key.seed), ignoreClusterUpdates: true };
  }

  private spawnChild(): ChildProcess {
    const log = openSync(this.logPath, 'a', 0o600);
    const child = spawn(this.options.binary ?? 'nats-server', ['-c', this.configPath], { stdio: ['ignore', log, log] });
    closeSync(log);
    this.child = child;
    this.startedAt = new Date().toISOString();
    this.exited = new Promise((resolve) => {
      const onExit = (how: string) => {
        if (this.child === child) this.child = null;
        resolve(how);
        this.restartLater(child, how);
      };
      child.once('exit', (code, sig) => onExit(code !== null ? `exit code ${code}` : `signal ${sig}`));
      // A failed spawn (no such binary) emits only `error`.
      child.once('error', (err) => {
        if (child.pid === undefined) onExit(`could not be started: ${err.message}`);
      });
    });
    return child;
  }

  private restartLater(child: ChildProcess, how: string): void {
    // Before start() succeeded, untilReady reports the exit; after stop(), it was asked for.
    if (!this.ready || this.stopping) return;
    if (ranStably(this.startedAt, new Date(), this.policy)) this.attempt = 0;
    const delayMs = restartDelayMs(this.attempt, this.policy);
    this.attempt += 1;
    this.options.logger.warn({
      server: this.options.serverName, pid: child.pid ?? null, exit: how, attempt: this.attempt, restartInMs: delayMs,
      state: waitingState(this.attempt, this.policy), log: this.logPath, lastLines: this.logTail(),
    }, 'nats-server exited unexpectedly; restarting it');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping) return;
      const next = this.spawnChild();
      this.options.logger.info({ server: this.options.serverName, pid: next.pid ?? null, attempt: this.attempt }, 'nats-server restarted');
    }, delayMs);
  }

  private get policy(): BackoffPolicy {
    return this.options.restartBackoff ?? NATS_RESTART_BACKOFF;
  }

  /** Polls until a client connects and JetStream answers; fails at once if the server exits. */
  private async untilReady(): Promise<void> {
    const timeoutMs = this.options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const exit: { how: string | null } = { how: null };
    void this.exited.then((how) => (exit.how = how));
    let last = 'none';
    let tookClients = false;
    const answered = await pollUntil(async () => {
      if (exit.how) return true;
      const nc = await connect({ ...this.clientOptions(), reconnect: false, timeout: 1000 }).catch((err: Error) => {
        last = err.message;
        return null;
      });
      if (!nc) return false;
      tookClients = true;
      try {
        await (await jetstreamManager(nc, { timeout: 2000 })).getAccountInfo();
        return true;
      } catch (err) {
        last = (err as Error).message;
        return false;
      } finally {
        await nc.close();
      }
    }, timeoutMs, 100);
    if (exit.how) throw this.startError(`exited during start (${exit.how})`);
    if (answered) return;
    if (this.options.quorumMayFollow && this.options.cluster && tookClients) {
      this.options.logger.warn({ server: this.options.serverName, routes: this.options.cluster.routes, lastError: last },
        `nats-server takes clients but JetStream did not answer within ${timeoutMs} ms: no quorum of the cluster yet; it answers once enough peers are up`);
      return;
    }
    throw this.startError(`did not answer with JetStream within ${timeoutMs} ms (last error: ${last})`);
  }

  private startError(what: string): Error {
    const tail = this.logTail();
    return new Error(`nats-server ${this.options.serverName} at ${this.url} ${what}; its log is ${this.logPath}${tail.length ? `, last lines:\n${tail.join('\n')}` : ' (empty)'}`);
  }

  /** The last lines of the server's log (its last 8 KiB at most). */
  private logTail(): string[] {
    if (!existsSync(this.logPath)) return [];
    const fd = openSync(this.logPath, 'r');
    try {
      const size = fstatSync(fd).size;
      const length = Math.min(size, 8192);
      const buffer = Buffer.alloc(length);
      readSync(fd, buffer, 0, length, size - length);
      return buffer.toString('utf8').split('\n').filter((line) => line.trim() !== '').slice(-LOG_TAIL_LINES);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Stops a server this data dir's previous appliance process left running (it holds the
   * ports and the store). Only a process whose command line names this config file is touched.
   */
  private async stopLeftover(): Promise<void> {
    if (!existsSync(this.pidPath)) return;
    const pid = Number.parseInt(readFileSync(this.pidPath, 'utf8').trim(), 10);
    if (!Number.isInteger(pid) || pid <= 0 || !(await this.isOurServer(pid))) return;
    this.options.logger.warn({ server: this.options.serverName, pid }, 'a nats-server left by a previous appliance process is running; stopping it');
    if (await stopProcess(pid, () => this.isOurServer(pid), this.options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS)) return;
    throw new Error(`nats-server PID ${pid} left by a previous appliance process (pid file ${this.pidPath}) did not exit after SIGKILL`);
  }

  private async isOurServer(pid: number): Promise<boolean> {
    const cmdline = await commandLine(pid);
    return cmdline.includes(this.configPath) && cmdline.some((arg) => arg.endsWith('nats-server')) && await processRuns(pid);
  }
}
