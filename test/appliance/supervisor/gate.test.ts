import t from 'tap';
import { judgeGate, type GateObservation, type ReadyReport } from '../../../appliance/supervisor/gate.ts';

const ready: ReadyReport = { type: 'ready', version: '0.2.0', url: 'http://127.0.0.1:7700', pseudokernel: 'connected', workloadStarts: 0 };
const at = (patch: Partial<GateObservation>): GateObservation => ({ now: 1000, deadline: 5000, limitSeconds: 4, exited: null, ready: null, apiAnswered: false, ...patch });

t.test('the health gate, case by case', async (t) => {
  const rows: [string, Partial<GateObservation>, string, RegExp?][] = [
    ['nothing reported yet, before the deadline: wait', {}, 'wait'],
    ['reported, API answers: pass', { ready, apiAnswered: true }, 'pass'],
    ['without a pseudokernel configured, it passes too', { ready: { ...ready, pseudokernel: 'absent' }, apiAnswered: true }, 'pass'],
    ['reported, API not answering yet: wait', { ready }, 'wait'],
    ['exited: fail at once, saying how', { exited: 'exit 1' }, 'fail', /exited \(exit 1\) before it was healthy/],
    ['a workload restarted: fail, even with the API answering', { ready: { ...ready, workloadStarts: 2 }, apiAnswered: true }, 'fail', /restarted 2 workload\(s\)/],
    ['pseudokernel down: fail', { ready: { ...ready, pseudokernel: 'down' }, apiAnswered: true }, 'fail', /pseudokernel is not connected/],
    ['deadline with no report: fail, saying what was missing', { now: 5000 }, 'fail', /not healthy within 4 s \(no full reconcile pass reported\)/],
    ['deadline with the API silent: fail', { now: 6000, ready }, 'fail', /its API did not answer/],
  ];
  for (const [name, patch, kind, reason] of rows) {
    const verdict = judgeGate(at(patch));
    t.equal(verdict.kind, kind, name);
    if (reason && verdict.kind === 'fail') t.match(verdict.reason, reason, `${name}: the reason`);
  }
});
