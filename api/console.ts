// GET /ui/: the web console, served by the node itself (no CDN: a node may reach nothing
// outside). Its own files are api/console/ (plain ES modules, no build step); xterm.js and
// tweetnacl are served from node_modules. The page holds the owner's key and signs an owner
// token per call (lib/tokens.ts), so it sees exactly what that owner may see. A strict
// CSP keeps everything same-origin; workloads' text is only ever set as text, never HTML.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import fastifyStatic from '@fastify/static';

export const CONSOLE_PREFIX = '/ui/';

/** The console's files (and `/ui`, redirected to `/ui/`): open even with read protection on; its calls carry owner tokens. */
export function isConsoleRoute(route: string): boolean {
  return route === CONSOLE_PREFIX.slice(0, -1) || route.startsWith(CONSOLE_PREFIX);
}
const require = createRequire(import.meta.url);
const packageDir = (name: string) => dirname(require.resolve(`${name}/package.json`));

/** /ui/vendor/NAME: the browser builds the page imports. */
const VENDOR: Record<string, string> = {
  'xterm.mjs': join(packageDir('@xterm/xterm'), 'lib/xterm.mjs'),
  'xterm.css': join(packageDir('@xterm/xterm'), 'css/xterm.css'),
  'addon-fit.mjs': join(packageDir('@xterm/addon-fit'), 'lib/addon-fit.mjs'),
  'nacl-fast.min.js': join(packageDir('tweetnacl'), 'nacl-fast.min.js'),
};

const CSP = [
  "default-src 'self'", "script-src 'self'", "connect-src 'self'", "img-src 'self' data:",
  // xterm.js sets its cells' styles from script.
  "style-src 'self' 'unsafe-inline'",
  "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'", "object-src 'none'",
].join('; ');

export function consoleRoutes() {
  return async (app: FastifyInstance) => {
    app.addHook('onSend', async (_request, reply) => {
      void reply.header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
    });
    await app.register(fastifyStatic, {
      // Without the trailing slash the plugin also answers /ui with a redirect to /ui/.
      root: join(dirname(fileURLToPath(import.meta.url)), 'console'), prefix: CONSOLE_PREFIX.slice(0, -1), redirect: true, index: 'index.html',
      schemaHide: true, cacheControl: false,
    });
    for (const [name, path] of Object.entries(VENDOR)) {
      app.get(`${CONSOLE_PREFIX}vendor/${name}`, { schema: { hide: true } }, (_request, reply) => reply.sendFile(path.split('/').pop()!, dirname(path)));
    }
  };
}
