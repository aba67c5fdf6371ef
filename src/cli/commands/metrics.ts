import type { Command } from "commander";
import { createServer } from "node:http";
import { LifeboatError } from "../../errors.js";
import { openForChecks } from "../../engine/check.js";
import { collectMetrics } from "../../metrics/collect.js";
import { action } from "../context.js";
import { collect } from "./repo.js";

export function registerMetricsCommands(program: Command): void {
  program
    .command("metrics")
    .description(
      "print Prometheus metrics (backup age, size, duration, recovery points, restore tests, checks)",
    )
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .action(
      action(async (context, options: { repo: string[] }) => {
        const { config } = await context.config();
        const { repositories, unreachable } = await openForChecks(config, options.repo);
        const registry = await collectMetrics(repositories, unreachable, config);
        context.out.raw(await registry.metrics());
      }),
    );

  program
    .command("serve")
    .description("serve /metrics (Prometheus) and /healthz over HTTP; the future dashboard's home")
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .option("--port <port>", "port to listen on", "9187")
    .option("--cache <seconds>", "reuse collected metrics for this long", "30")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .action(
      action(
        async (context, options: { host: string; port: string; cache: string; repo: string[] }) => {
          const { config } = await context.config();
          const port = Number(options.port);
          if (!Number.isInteger(port) || port < 0 || port > 65535)
            throw new LifeboatError("USAGE", "--port must be 0-65535");
          const cacheMs = Number(options.cache) * 1000;
          let cached: { at: number; text: string; type: string } | undefined;
          const render = async () => {
            if (cached && Date.now() - cached.at < cacheMs) return cached;
            const { repositories, unreachable } = await openForChecks(config, options.repo);
            const registry = await collectMetrics(repositories, unreachable, config);
            cached = { at: Date.now(), text: await registry.metrics(), type: registry.contentType };
            return cached;
          };
          const server = createServer((request, response) => {
            if (request.url === "/healthz") {
              response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
              return;
            }
            if (request.url !== "/metrics") {
              response.writeHead(404, { "content-type": "text/plain" }).end("see /metrics\n");
              return;
            }
            render().then(
              (metrics) =>
                response.writeHead(200, { "content-type": metrics.type }).end(metrics.text),
              (error: unknown) =>
                response
                  .writeHead(500, { "content-type": "text/plain" })
                  .end(`${(error as Error).message}\n`),
            );
          });
          await new Promise<void>((resolve, reject) => {
            server.once("error", (error) =>
              reject(
                new LifeboatError(
                  "USAGE",
                  `cannot listen on ${options.host}:${port}: ${error.message}`,
                ),
              ),
            );
            server.listen(port, options.host, resolve);
          });
          const address = server.address() as { port: number };
          context.out.note(`serving http://${options.host}:${address.port}/metrics`);
          await new Promise<void>((resolve) => {
            const stop = () => server.close(() => resolve());
            process.once("SIGTERM", stop);
            process.once("SIGINT", stop);
          });
        },
      ),
    );
}
