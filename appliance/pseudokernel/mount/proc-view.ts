// The `proc/` view of a mount, from ProcTable.list() at most once per period: a `ls -l`
// of the tree asks for it dozens of times in a row, the table changes far more slowly.
import type { ProcTable } from '../interfaces.ts';
import { procView, type ViewNode } from './tree.ts';

export class ProcSnapshots {
  private last: { startedAt: number; settled: boolean; view: Promise<ViewNode> } | null = null;

  constructor(
    private readonly table: ProcTable,
    private readonly localNode: string,
    private readonly periodMs = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The tree of the last list, or of a new one once the period has passed; a failed list also counts (it is not retried at once). */
  view(): Promise<ViewNode> {
    const now = this.now();
    if (this.last && (!this.last.settled || now - this.last.startedAt < this.periodMs)) return this.last.view;
    const last = {
      startedAt: now,
      settled: false,
      view: this.table.list().then((entries) => procView(entries, this.localNode, now)).finally(() => (last.settled = true)),
    };
    this.last = last;
    return last.view;
  }
}
