// A pull's progress, from dockerd's progress lines to short lines for the node's events:
// layers done of those known, bytes downloaded of those known, at most one line per
// interval. Pure: the time is an argument.

/** One of dockerd's progress lines (`docker pull` output as JSON). */
export interface PullEvent {
  status?: unknown;
  id?: unknown;
  progressDetail?: { current?: unknown; total?: unknown } | null;
}

interface Layer {
  current: number;
  total: number;
  done: boolean;
}

/** The statuses dockerd gives a layer (its `id`); the first line's `id` is the tag, which is none of them. */
const LAYER_STATUSES = new Set(['Pulling fs layer', 'Waiting', 'Downloading', 'Verifying Checksum', 'Download complete', 'Extracting', 'Pull complete', 'Already exists']);
const DOWNLOADED = new Set(['Download complete', 'Extracting', 'Pull complete']);
const DONE = new Set(['Pull complete', 'Already exists']);

export class PullProgress {
  private readonly layers = new Map<string, Layer>();
  private lastAtMs = Number.NEGATIVE_INFINITY;
  private told = '';

  /** `what`: how each line starts (`pulling 127.0.0.1:5000/app:1`). */
  constructor(private readonly what: string, private readonly intervalMs: number) {}

  /** The line to tell after `event` at `nowMs`; null when nothing changed or the last line was too recent. */
  update(event: PullEvent, nowMs: number): string | null {
    const status = typeof event.status === 'string' ? event.status : '';
    if (typeof event.id !== 'string' || !LAYER_STATUSES.has(status)) return null;
    const layer = this.layers.get(event.id) ?? { current: 0, total: 0, done: false };
    this.layers.set(event.id, layer);
    const detail = event.progressDetail ?? {};
    if (status === 'Downloading') {
      if (typeof detail.total === 'number' && detail.total > 0) layer.total = detail.total;
      if (typeof detail.current === 'number' && detail.current >= 0) layer.current = Math.min(detail.current, layer.total || detail.current);
    }
    if (DOWNLOADED.has(status)) layer.current = layer.total;
    if (DONE.has(status)) layer.done = true;
    if (nowMs - this.lastAtMs < this.intervalMs) return null;
    const line = this.line();
    if (line === this.told) return null;
    this.lastAtMs = nowMs;
    this.told = line;
    return line;
  }

  /** Where the pull is: `pulling X: 2/5 layers, 1.2 MiB of 3.4 MiB`. */
  line(): string {
    return `${this.what}: ${this.summary()}`;
  }

  /** `2/5 layers, 1.2 MiB of 3.4 MiB` (bytes of the layers downloaded; those already here count none). */
  summary(): string {
    const layers = [...this.layers.values()];
    const current = layers.reduce((n, l) => n + l.current, 0);
    const total = layers.reduce((n, l) => n + l.total, 0);
    return `${layers.filter((l) => l.done).length}/${layers.length} layers, ${formatBytes(current)} of ${formatBytes(total)}`;
  }
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}
