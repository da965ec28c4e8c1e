// The nats-server configuration file of one node, rendered from typed options. Pure:
// the supervisor (nats-server.ts) writes it and starts the server with it.
//
// Who may talk to the server: clients only as the node's own NKEY user (the appliance's
// connections); routes only with the grid's route password, and, unless a benchmark
// turns it off, over mutual TLS with certificates of the grid's CA.

/** The files of a route's mutual TLS: the grid's CA, and this node's certificate and key signed by it. */
export interface NatsRouteTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface NatsClusterOptions {
  /** The same on every server of the cluster. */
  name: string;
  host: string;
  port: number;
  /** The other servers' cluster addresses, `host:port` (IPv6 hosts in brackets). */
  routes: string[];
  /** Mutual TLS on every route; null: plain TCP, for benchmarks only. */
  tls: NatsRouteTls | null;
  /** The file holding the grid's route password (the same on every node). */
  routeSecretFile: string;
}

export interface NatsConfigOptions {
  /** Unique in the cluster; JetStream clustering needs it. */
  serverName: string;
  host: string;
  port: number;
  /** JetStream keeps its files below this directory. */
  storeDir: string;
  /** JetStream's bounds on this server: files on disk and memory, in bytes (nats-server's own default: most of the disk and memory). */
  maxFileStoreBytes?: number;
  maxMemoryStoreBytes?: number;
  pidFile: string;
  /** The public NKEY (`U...`) of the node's client user: the only client the server takes. */
  clientNkey: string;
  cluster?: NatsClusterOptions;
  /** The grid's route password (what cluster.routeSecretFile holds); needed with `cluster`. */
  routePassword?: string;
}

/** The user every route authenticates as; its password is the grid's. */
export const ROUTE_USER = 'zone-route';

// nats-server's names become subjects and file names: keep them plain.
const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):([0-9]{1,5})$/;
const USER_NKEY = /^U[A-Z2-7]{55}$/;
// It travels inside route URLs: no character that would need escaping there.
const ROUTE_PASSWORD = /^[A-Za-z0-9_-]{16,128}$/;

/** The configuration file's text; throws naming the option that is not acceptable. */
export function natsServerConfig(options: NatsConfigOptions): string {
  checkName('serverName', options.serverName);
  checkPort('port', options.port);
  if (!USER_NKEY.test(options.clientNkey)) throw new Error('clientNkey is not a user NKEY (U followed by 55 base32 characters)');
  const lines = [
    '# Written by the Zone appliance at every start of the server; edits are lost.',
    `server_name: ${quote(options.serverName)}`,
    `host: ${quote(options.host)}`,
    `port: ${options.port}`,
    `pid_file: ${quote(options.pidFile)}`,
    // A /zone/fs path of up to PATH_MAX bytes is a KV key of about 5.5 KiB (fs/grid-fs.ts).
    'max_control_line: 16384',
    'authorization {',
    `  users: [ { nkey: ${quote(options.clientNkey)} } ]`,
    '}',
    'jetstream {',
    `  store_dir: ${quote(options.storeDir)}`,
    ...storeBound('max_file_store', options.maxFileStoreBytes),
    ...storeBound('max_memory_store', options.maxMemoryStoreBytes),
    '}',
  ];
  const cluster = options.cluster;
  if (cluster) {
    checkName('cluster.name', cluster.name);
    checkPort('cluster.port', cluster.port);
    const password = options.routePassword ?? '';
    if (!ROUTE_PASSWORD.test(password)) throw new Error(`the route password in ${cluster.routeSecretFile} (cluster.routeSecretFile) is not 16 to 128 of [A-Za-z0-9_-]`);
    const routes = cluster.routes.map((route, i) => {
      const match = HOST_PORT.exec(route);
      if (!match) throw new Error(`cluster.routes[${i}] is ${JSON.stringify(route)}; expected host:port (IPv6 hosts in brackets)`);
      checkPort(`cluster.routes[${i}] port`, Number(match[2]));
      return `    ${quote(`nats-route://${ROUTE_USER}:${password}@${route}`)}`;
    });
    lines.push(
      'cluster {',
      `  name: ${quote(cluster.name)}`,
      `  host: ${quote(cluster.host)}`,
      `  port: ${cluster.port}`,
      // Clients are the node's own, on its loopback: other servers' client ports are not theirs to try.
      '  no_advertise: true',
      '  authorization {',
      `    user: ${quote(ROUTE_USER)}`,
      `    password: ${quote(password)}`,
      '  }',
      ...(cluster.tls ? [
        '  tls {',
        `    ca_file: ${quote(cluster.tls.caFile)}`,
        `    cert_file: ${quote(cluster.tls.certFile)}`,
        `    key_file: ${quote(cluster.tls.keyFile)}`,
        '    verify: true',
        '    timeout: 5',
        '  }',
      ] : []),
      '  routes: [',
      ...routes,
      '  ]',
      '}',
    );
  }
  return `${lines.join('\n')}\n`;
}

/** A jetstream block line: a byte count nats-server reads as a plain integer. */
function storeBound(name: string, bytes: number | undefined): string[] {
  if (bytes === undefined) return [];
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new Error(`${name} is ${bytes}; expected a positive number of bytes`);
  return [`  ${name}: ${bytes}`];
}

// The configuration format reads JSON strings.
function quote(value: string): string {
  return JSON.stringify(value);
}

function checkName(field: string, value: string): void {
  if (!NAME.test(value)) throw new Error(`${field} is ${JSON.stringify(value)}; expected 1 to 64 of [A-Za-z0-9_-]`);
}

function checkPort(field: string, value: number): void {
  // nats-server reads port 0 as "the default port", not "any free port".
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw new Error(`${field} is ${value}; expected an integer from 1 to 65535`);
}
