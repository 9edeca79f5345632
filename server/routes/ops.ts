/**
 * For operators and orchestrators: `GET /healthz` (the process answers), `GET /readyz` (a worker
 * has the model and the server is not stopping: 200, else 503, with the pool's figures), `GET
 * /metrics` (Prometheus text format).
 */
import { Router } from 'express';
import { ROUTES, type AppContext } from '../context.ts';

export function opsRouter(ctx: AppContext): Router {
  const router = Router();

  router.get(ROUTES.healthz, (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get(ROUTES.readyz, (_req, res) => {
    const stats = ctx.pool.stats();
    const ready = ctx.pool.isReady;
    res.status(ready ? 200 : 503).json({ ...stats, ready, readyWorkers: stats.ready });
  });

  router.get(ROUTES.metrics, (_req, res) => {
    res.type('text/plain; version=0.0.4; charset=utf-8').send(ctx.metrics.render());
  });

  return router;
}
