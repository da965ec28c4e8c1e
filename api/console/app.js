// The console's pages, one per hash (#blueprints, #files/a/b, #terminal/bp/wl, ...). The
// owner's key lives in this module only: a reload or a closed tab signs out.
import { NodeClient } from './api.js';
import { bytes, el, table } from './dom.js';
import { plot } from './plot.js';
import { openGridShell } from './grid-shell.js';
import { openTerminal } from './terminal.js';
import { parseKey } from './tokens.js';

const $ = (id) => document.getElementById(id);
const page = $('page');
const status = (text) => { $('status').textContent = text; };

let client = null;
/** The owner's events so far (oldest first) and who wants to hear of new ones. */
const events = [];
const listeners = new Set();
let stopEvents = () => {};
/** What the current page must undo when another one opens. */
let leave = () => {};

const segments = (rest) => rest.split('/').filter(Boolean).map(decodeURIComponent);
const enc = (parts) => parts.map(encodeURIComponent).join('/');
const stateCell = (state) => el('span', { class: `state-${state}`, 'data-state': state }, state);
const failure = (err) => el('p', { class: 'error', role: 'alert' }, err.message);

async function signIn() {
  $('sign-in-error').textContent = '';
  try {
    const file = $('key-file').files[0];
    const text = file ? await file.text() : $('key-text').value;
    const key = parseKey(text);
    const health = await (await fetch('/healthz')).json();
    client = new NodeClient(key, health.node);
  } catch (err) {
    $('sign-in-error').textContent = err.message;
    return;
  }
  $('key-text').value = '';
  $('key-file').value = '';
  $('sign-in').hidden = true;
  $('page').hidden = false;
  $('nav').hidden = false;
  $('sign-out').hidden = false;
  $('who').textContent = `${client.key.publicKey.slice(0, 24)}… on node ${client.node}`;
  stopEvents = client.followEvents((e) => {
    events.push(e);
    if (events.length > 5000) events.shift();
    for (const listener of listeners) listener(e);
  }, (state) => status(`events: ${state}`));
  if (!location.hash || location.hash === '#') location.hash = '#blueprints';
  else void route();
}

function signOut() {
  leave();
  stopEvents();
  client = null;
  events.length = 0;
  location.hash = '';
  location.reload();
}

/** Calls `fn` on each new event while the page is shown. */
function onEvents(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Runs `fn` at most once per `ms`, the last call winning. */
function debounce(fn, ms) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

const pages = {
  async nodes() {
    page.replaceChildren(el('h1', {}, 'Nodes'));
    const [proc, info] = await Promise.all([
      client.json('/v1/grid/proc').catch((err) => ({ error: err })),
      fetch('/v1/node').then((r) => (r.ok ? r.json() : null)).catch(() => null),
    ]);
    if (info) {
      const c = info.capacity;
      page.append(el('h2', {}, `This node: ${info.id} (version ${info.version})`), table(['', 'cpus', 'memory', 'disk'], [
        ['total', c.total.cpus, bytes(c.total.memoryBytes), bytes(c.total.diskBytes)],
        ['reserved', c.reserved.cpus, bytes(c.reserved.memoryBytes), bytes(c.reserved.diskBytes)],
        ['free', c.free.cpus, bytes(c.free.memoryBytes), bytes(c.free.diskBytes)],
      ]), table(['driver', 'available', 'version'], info.drivers.map((d) => [d.kind, d.available ? 'yes' : `no: ${d.reason ?? ''}`, d.version ?? ''])));
    } else {
      page.append(el('p', { class: 'muted' }, 'This node\'s capacity needs a read token (read protection is on).'));
    }
    if (proc.error) return page.append(failure(proc.error));
    const byNode = new Map();
    for (const w of proc.workloads) byNode.set(w.node, [...(byNode.get(w.node) ?? []), w]);
    page.append(el('h2', {}, 'Your workloads by node'), table(['node', 'workloads', 'running'], [...byNode].map(([node, ws]) => [node, ws.length, ws.filter((w) => w.state === 'running').length])));
  },

  async blueprints() {
    page.replaceChildren(el('h1', {}, 'Blueprints'));
    const body = el('div', { id: 'blueprints' });
    page.append(body);
    let usage = new Map();
    const draw = async () => {
      let list;
      try {
        list = (await client.json('/v1/grid/blueprints')).blueprints;
      } catch (err) {
        return body.replaceChildren(failure(err));
      }
      if (list.length === 0) return body.replaceChildren(el('p', { class: 'muted' }, 'No blueprints of yours on this node.'));
      body.replaceChildren(...list.map((bp) => el('section', { 'data-blueprint': bp.name },
        el('h2', {}, `${bp.name} v${bp.version}${bp.deleted ? ' (deleted)' : ''}`),
        table(['workload', 'kind', 'state', 'health', 'restarts', 'last error', 'cpu (1 h)', 'memory (1 h)', ''], bp.workloads.map((w) => {
          const samples = usage.get(`${bp.name}/${w.workload}`) ?? [];
          const last = samples.at(-1);
          const to = enc([bp.name, w.workload]);
          return [
            el('span', { 'data-workload': w.workload }, w.workload), w.kind, stateCell(w.state), w.health ?? '', String(w.restarts), w.lastError ?? '',
            samples.length ? el('span', {}, plot(samples.map((s) => ({ at: s.at, value: s.cpu })), { label: `cpu ${last.cpu.toFixed(3)} cores` }), ` ${last.cpu.toFixed(2)}`) : '',
            samples.length ? el('span', {}, plot(samples.map((s) => ({ at: s.at, value: s.memoryBytes })), { color: '#188038', label: `memory ${bytes(last.memoryBytes)}` }), ` ${bytes(last.memoryBytes)}`) : '',
            el('span', {}, el('a', { href: `#logs/${to}` }, 'logs'), ' ', el('a', { href: `#terminal/${to}` }, w.kind === 'vm' ? 'console' : 'terminal')),
          ];
        })))));
    };
    const loadUsage = async () => {
      const u = await client.json('/v1/grid/usage').catch(() => ({ workloads: [] }));
      usage = new Map(u.workloads.map((w) => [`${w.blueprint}/${w.workload}`, w.samples]));
    };
    await loadUsage();
    await draw();
    // States come from the event stream; the plots are sampled every 15 s on the node.
    const redraw = debounce(draw, 150);
    const unlisten = onEvents(redraw);
    const timer = setInterval(() => void loadUsage().then(draw), 15_000);
    return () => {
      unlisten();
      clearInterval(timer);
    };
  },

  async events() {
    const filter = el('input', { type: 'search', placeholder: 'filter: blueprint, workload, state or reason', size: 50, id: 'event-filter' });
    const rows = el('tbody');
    const matches = (e) => {
      const f = filter.value.trim().toLowerCase();
      return !f || [e.blueprint, e.workload, e.from, e.to, e.reason].some((v) => (v ?? '').toLowerCase().includes(f));
    };
    const row = (e) => el('tr', {}, [e.seq, e.at.replace('T', ' ').slice(0, 19), e.blueprint ?? '', e.workload ?? '', e.from ?? '', e.to, e.reason].map((c) => el('td', {}, String(c))));
    const draw = () => rows.replaceChildren(...events.filter(matches).slice(-500).reverse().map(row));
    filter.addEventListener('input', draw);
    page.replaceChildren(el('h1', {}, 'Events'), filter, el('table', { id: 'events' }, el('thead', {}, el('tr', {}, ['seq', 'at', 'blueprint', 'workload', 'from', 'to', 'reason'].map((h) => el('th', {}, h)))), rows));
    draw();
    return onEvents((e) => {
      if (matches(e)) rows.prepend(row(e));
    });
  },

  async logs(rest) {
    const [blueprint, workload] = segments(rest);
    const out = el('pre', { class: 'log', id: 'log' });
    page.replaceChildren(el('h1', {}, `Logs of ${blueprint}/${workload}`), out);
    const controller = new AbortController();
    try {
      const res = await client.fetch(`/v1/grid/logs/${enc([blueprint, workload])}?follow=true&tail=500`, { signal: controller.signal });
      void (async () => {
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
          out.append(document.createTextNode(value));
          // Keep the page light: the oldest text goes past 1 MiB or so.
          while (out.childNodes.length > 2000) out.firstChild.remove();
          if (atEnd) out.scrollTop = out.scrollHeight;
        }
        out.append(el('span', { class: 'muted' }, '\n[end of the log]'));
      })().catch(() => undefined);
    } catch (err) {
      page.append(failure(err));
    }
    return () => controller.abort();
  },

  async files(rest) {
    const parts = segments(rest);
    const url = `/v1/grid/fs/${enc(parts)}`;
    const crumbs = [el('a', { href: '#files/' }, '/zone/fs'), ...parts.map((p, i) => [' / ', el('a', { href: `#files/${enc(parts.slice(0, i + 1))}` }, p)])];
    page.replaceChildren(el('h1', {}, 'Files'), el('p', { id: 'crumbs' }, crumbs));
    let res;
    try {
      res = await client.fetch(url);
    } catch (err) {
      return page.append(failure(err));
    }
    if ((res.headers.get('content-type') ?? '').startsWith('application/json')) {
      const listing = await res.json();
      const upload = el('input', { type: 'file', id: 'upload' });
      upload.addEventListener('change', async () => {
        const file = upload.files[0];
        if (!file) return;
        try {
          await client.fetch(`/v1/grid/fs/${enc([...parts, file.name])}`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: file });
          status(`uploaded ${file.name}`);
          void route();
        } catch (err) {
          page.append(failure(err));
        }
      });
      page.append(table(['name', 'size', 'modified'], listing.entries.map((e) => [
        el('a', { href: `#files/${enc([...parts, e.name])}` }, e.type === 'dir' ? `${e.name}/` : e.name), e.type === 'dir' ? '' : bytes(e.size), e.mtime.replace('T', ' ').slice(0, 19),
      ])), el('label', { for: 'upload' }, 'Upload a file here'), upload);
      return;
    }
    const blob = await res.blob();
    const link = el('a', { download: parts.at(-1), href: URL.createObjectURL(blob) }, `Download (${bytes(blob.size)})`);
    const preview = blob.size <= 1 << 20 ? await blob.text() : '(larger than 1 MiB: download it)';
    page.append(link, el('pre', { class: 'file', id: 'file' }, preview));
    return () => URL.revokeObjectURL(link.href);
  },

  async pipes() {
    page.replaceChildren(el('h1', {}, 'Pipes'));
    try {
      const { pipes } = await client.json('/v1/grid/pipes');
      page.append(pipes.length ? table(['from', 'to', 'lag (messages)', 'lag (bytes)'], pipes.map((p) => [p.from, p.to, String(p.lagMessages), bytes(p.lagBytes)])) : el('p', { class: 'muted' }, 'No pipes of yours.'));
    } catch (err) {
      page.append(failure(err));
    }
  },

  async shell() {
    const box = el('div', { id: 'terminal' });
    page.replaceChildren(el('h1', {}, 'Shell'), box);
    return openGridShell(client, box);
  },

  async terminal(rest) {
    const [blueprint, workload] = segments(rest);
    const line = el('p', { id: 'terminal-status', 'data-ended': 'false' }, 'connecting…');
    const box = el('div', { id: 'terminal' });
    page.replaceChildren(el('h1', {}, `Terminal: ${blueprint}/${workload}`), line, box);
    return openTerminal(client, box, blueprint, workload, (text, ended) => {
      line.textContent = text;
      line.dataset.ended = String(ended);
    });
  },
};

async function route() {
  if (!client) return;
  leave();
  leave = () => {};
  const hash = location.hash.slice(1);
  const cut = hash.indexOf('/');
  const name = cut < 0 ? hash : hash.slice(0, cut);
  const show = Object.hasOwn(pages, name) ? pages[name] : pages.blueprints;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('current', a.getAttribute('href').slice(1).split('/')[0] === name);
  page.dataset.page = name;
  page.dataset.ready = 'false';
  try {
    leave = (await show(cut < 0 ? '' : hash.slice(cut + 1))) ?? (() => {});
  } catch (err) {
    page.append(failure(err));
  }
  page.dataset.ready = 'true';
}

$('sign-in-button').addEventListener('click', () => void signIn());
$('sign-out').addEventListener('click', signOut);
window.addEventListener('hashchange', () => void route());
