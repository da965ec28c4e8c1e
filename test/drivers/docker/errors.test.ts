// dockerode errors -> EngineUnavailableError / WorkloadSpecError.
import t from 'tap';
import { EngineUnavailableError, WorkloadSpecError } from '../../../drivers/contract.ts';
import { engineErrorOf, specErrorOf } from '../../../drivers/docker/errors.ts';

function httpError(statusCode: number, message: string) {
  return Object.assign(new Error(`(HTTP code ${statusCode}) - ${message}`), { statusCode, json: { message } });
}

t.test('an unreachable dockerd is EngineUnavailableError', async (t) => {
  const err = engineErrorOf(Object.assign(new Error('connect ENOENT /run/x.sock'), { code: 'ENOENT' }), '/run/x.sock');
  t.type(err, EngineUnavailableError);
  t.match((err as Error).message, /dockerd not reachable at \/run\/x.sock/);
  const http = httpError(404, 'No such container: x');
  t.equal(engineErrorOf(http, '/run/x.sock'), http, 'an answer from dockerd is not unavailability');
});

t.test('requests refused as written name the field at fault', async (t) => {
  const cases: [number, string, string][] = [
    [400, 'invalid CapAdd: unknown capability: "CAP_FOO"', 'capabilities'],
    [400, 'Minimum memory limit allowed is 6MB', 'resources.memory'],
    [400, 'invalid mount config for type "bind": bind source path does not exist: /nonexist', 'mounts'],
    [400, 'OCI runtime create failed: exec: "nonexist": executable file not found in $PATH', 'command'],
    [500, 'driver failed programming external connectivity: Bind for 0.0.0.0:8080 failed: port is already allocated', 'ports'],
    [400, 'something new', 'definition'],
  ];
  for (const [status, message, field] of cases) {
    const err = specErrorOf('web', httpError(status, message));
    t.type(err, WorkloadSpecError);
    t.equal(err?.field, field, message);
  }
  t.equal(specErrorOf('web', httpError(500, 'containerd is gone')), null, 'a server fault is retried, not blamed on the spec');
});
