// `vagrant up` of one node (the steps: vagrant-up.steps.ts), opt-in with ZONE_VAGRANT_UP=1.
// Issue 20 keeps CI to one VM node under TCG, and test/cli/vm-cluster.test.ts boots it;
// this would be a second one, 4 to 7 min of a 2-core CI run. Opt-in as a module of its own
// so that a skipped run creates nothing and waits for no lock.
import t from 'tap';

if (process.env.ZONE_VAGRANT_UP === '1') await import('./vagrant-up.steps.ts');
else t.plan(0, 'vagrant up of a node: opt-in with ZONE_VAGRANT_UP=1 (CI boots one VM node, in vm-cluster.test.ts)');
