// GET /metrics (Prometheus text, prom-client): workloads by state and their restarts
// (read from the appliance at scrape time), API latency, and blueprint refusals by
// reason. One registry per server, so several servers in one process never mix.
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Appliance, WorkloadState } from '../appliance/types.ts';

const STATES: WorkloadState[] = ['pending', 'running', 'exited', 'backoff', 'crashloop', 'failed', 'unknown', 'removing'];

export interface ApiMetrics {
  registry: Registry;
  /** Counts a refused blueprint by its error code (SIGNATURE, POLICY, STALE, ...). */
  refused(reason: string): void;
  observeRequest(labels: { method: string; route: string; status: number }, seconds: number): void;
}

export function createMetrics(appliance: Appliance): ApiMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'zone_process_' });
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
