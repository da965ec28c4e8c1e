// A CPU profile of every appliance a benchmark starts (node refuses --cpu-prof in
// NODE_OPTIONS, and `zone cluster` starts the appliances itself):
//   NODE_OPTIONS="--import $PWD/bench/cpu-profile.mjs" ZONE_CPU_PROFILE_DIR=DIR node --import tsx bench/pipes.ts
// Plain JavaScript: NODE_OPTIONS' imports also load in the module loader's worker, before tsx.
// writes DIR/appliance-PID.cpuprofile when an appliance exits (open it in Chrome's DevTools).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import process from 'node:process';

const dir = process.env.ZONE_CPU_PROFILE_DIR;
if (dir && process.argv.some((a) => a.endsWith('api/main.ts'))) {
  const session = new Session();
  session.connect();
  // 1 ms samples: enough for where the time goes, little cost.
  session.post('Profiler.setSamplingInterval', { interval: 1000 });
  session.post('Profiler.enable');
  session.post('Profiler.start');
  // An inspector session of the main thread answers synchronously: this runs to its end at exit.
  process.once('exit', () => {
    session.post('Profiler.stop', (err, result) => {
      if (!err) writeFileSync(join(dir, `appliance-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
