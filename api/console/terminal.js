// A terminal into a workload: xterm.js over a WebSocket to /v1/grid/terminal. The first
// message is the owner token for this path; then binary frames carry the terminal's
// bytes, text frames the node's word ({ended} / {error}) and the page's resizes.
import { Terminal } from './vendor/xterm.mjs';
import { FitAddon } from './vendor/addon-fit.mjs';
import { NodeClient } from './api.js';
import { ownerToken } from './tokens.js';

const encoder = new TextEncoder();

/** Opens a terminal into `blueprint/workload` in `container`; `onStatus(text, ended)` tells the page. Returns the close function. */
export function openTerminal(client, container, blueprint, workload, onStatus) {
  const term = new Terminal({ convertEol: false, cursorBlink: true, fontSize: 14, scrollback: 2000 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(container);
  fit.fit();
  // For tests and the curious: the terminal of this page.
  window.zoneTerminal = term;

  const path = `/v1/grid/terminal/${encodeURIComponent(blueprint)}/${encodeURIComponent(workload)}`;
  const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`);
  socket.binaryType = 'arraybuffer';
  socket.addEventListener('open', () => {
    socket.send(JSON.stringify({ token: ownerToken(client.key, client.node, 'GET', NodeClient.pathOf(path)), cols: term.cols, rows: term.rows }));
    onStatus('connected', false);
    term.focus();
  });
  socket.addEventListener('message', (message) => {
    if (typeof message.data !== 'string') {
      term.write(new Uint8Array(message.data));
      return;
    }
    let word;
    try {
      word = JSON.parse(message.data);
    } catch {
      return;
    }
    const text = word.ended ?? word.error;
    if (typeof text !== 'string') return;
    // The node's word is text: its control characters are not passed to the terminal.
    const plain = [...text].map((c) => (c.charCodeAt(0) < 32 || c.charCodeAt(0) === 127 ? ' ' : c)).join('');
    term.write(`\r\n\x1b[33m[${plain}]\x1b[0m\r\n`);
    said = true;
    onStatus(text, true);
  });
  let said = false;
  socket.addEventListener('close', () => {
    if (!said) onStatus('closed', true);
  });
  const input = term.onData((data) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
  });
  const resized = term.onResize(({ cols, rows }) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ resize: [cols, rows] }));
  });
  const onWindow = () => fit.fit();
  window.addEventListener('resize', onWindow);
  return () => {
    window.removeEventListener('resize', onWindow);
    input.dispose();
    resized.dispose();
    socket.close();
    term.dispose();
    if (window.zoneTerminal === term) window.zoneTerminal = undefined;
  };
}
