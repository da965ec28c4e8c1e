// GET /metrics (Prometheus text, prom-client): workloads by state and their restarts
// (read from the appliance at scrape time), their CPU and memory (the console's latest
// sample), API latency, and blueprint refusals by reason. One registry per server, so
// several servers in one process never mix. The text passes `promtool check metrics`.
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Appliance, WorkloadState } from '../appliance/types.ts';

/**
 * prom-client's gauges named *_total, which promtool's lint refuses (only counters end in
 * _total); the same counts stay, by type, in the metrics of the same names without it.
 */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
const PROCESS_PREFIX = 'zone_process_';

const STATES: WorkloadState[] = ['pending', 'running', 'exited', 'backoff', 'crashloop', 'failed', 'unknown', 'removing'];

export interface ApiMetrics {
  registry: Registry;
  /** Counts a refused blueprint by its error code (SIGNATURE, POLICY, STALE, ...). */
  refused(reason: string): void;
  observeRequest(labels: { method: string; route: string; status: number }, seconds: number): void;
}

export function createMetrics(appliance: Appliance): ApiMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: PROCESS_PREFIX });
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(PROCESS_PREFIX + name);
  new Gauge({
    name: 'zone_workloads', help: 'workloads on this node by state', labelNames: ['state'], registers: [registry],
    collect() {
      this.reset();
      const counts = new Map(STATES.map((s) => [s, 0]));
      for (const bp of appliance.listBlueprints()) for (const w of bp.workloads) counts.set(w.state, (counts.get(w.state) ?? 0) + 1);
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'zone_workload_restarts', help: 'restarts of each workload since it was created', labelNames: ['blueprint', 'workload'], registers: [registry],
    collect() {
      this.reset();
      for (const bp of appliance.listBlueprints()) for (const w of bp.workloads) this.set({ blueprint: w.blueprint, workload: w.workload }, w.restarts);
    },
  });
  const usage = appliance.console;
  if (usage) {
    new Gauge({
      name: 'zone_workload_cpu_cores', help: 'CPU a workload used over the last sampling period, in cores', labelNames: ['owner', 'blueprint', 'workload'], registers: [registry],
      collect() {
        this.reset();
        for (const u of usage.latestUsage()) this.set({ owner: u.owner, blueprint: u.blueprint, workload: u.workload }, u.sample.cpu);
      },
    });
    new Gauge({
      name: 'zone_workload_memory_bytes', help: 'memory a workload uses (containers: without the page cache; VMs: the memory the guest has)', labelNames: ['owner', 'blueprint', 'workload'], registers: [registry],
      collect() {
        this.reset();
        for (const u of usage.latestUsage()) this.set({ owner: u.owner, blueprint: u.blueprint, workload: u.workload }, u.sample.memoryBytes);
      },
    });
  }
  const refusals = new Counter({ name: 'zone_blueprint_refusals_total', help: 'submitted blueprints refused, by reason', labelNames: ['reason'], registers: [registry] });
  const latency = new Histogram({
    name: 'zone_api_request_duration_seconds', help: 'API request latency', labelNames: ['method', 'route', 'status'], registers: [registry],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
  });
  return {
    registry,
    refused: (reason) => refusals.inc({ reason }),
    observeRequest: ({ method, route, status }, seconds) => latency.observe({ method, route, status: String(status) }, seconds),
  };
}

export function metricsRoutes(metrics: ApiMetrics) {
  return async (app: FastifyInstance) => {
    app.get('/metrics', {
      schema: { tags: ['node'], summary: 'Prometheus metrics', response: { 200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } } } },
    }, async (_request, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    });
  };
}
