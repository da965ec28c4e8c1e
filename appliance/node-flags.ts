// How Node runs the appliance: the supervisor, `zone cluster` and `npm start` (package.json
// spells them out; test/appliance/node-flags.test.ts holds it to these) start it with them.
// The old generation starts at 256 MiB instead of V8's few MiB. The Buffers that carry a
// pipe's bytes count toward it, and with the appliance's heap of about 40 MB V8 ran a full
// mark-compact every 100-150 ms while a pipe streamed: 7-10 per 64 MiB in each appliance,
// most of what the appliances spent on a pipe (BENCHMARKS.md, "The appliance's old
// generation"). Not allowed in NODE_OPTIONS, hence on the command line.
export const APPLIANCE_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=256'];
