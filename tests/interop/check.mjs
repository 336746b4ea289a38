// tests/interop/check.mjs: Schematic's Node SDK (1.6.2) in replicator mode
// reads the Redis cache ferry filled and evaluates flags locally with its
// WASM engine. Its health URL is ferry's /ready, so the cache version it
// reads is the one ferry publishes. Every case's answer is known from the
// spec's sample entities (schematic-datastream.md 12.7).
//
//   node check.mjs REDIS_PORT READY_URL
import { SchematicClient } from "@schematichq/schematic-typescript-node";
import { createClient } from "redis";

const [redisPort, readyURL] = process.argv.slice(2);
const redis = createClient({ url: `redis://127.0.0.1:${redisPort}` });
await redis.connect();

const client = new SchematicClient({
  apiKey: "interop-test-key",
  // Everything but Redis and /ready points at a closed loopback port: the
  // test must not reach the internet (REST fallback, event capture).
  basePath: "http://127.0.0.1:9",
  eventCaptureBaseURL: "http://127.0.0.1:9",
  useDataStream: true,
  offline: false,
  logLevel: "error",
  dataStream: {
    replicatorMode: true,
    redisClient: redis,
    replicatorHealthURL: readyURL,
    replicatorHealthCheck: 1000,
  },
});

const cases = [
  // [flag, context, expected]
  ["plan-flag", { company: { domain: "ACME.test" } }, true],
  ["plan-flag", { company: { id: "acme" } }, true],
  ["trait-flag", { company: { domain: "acme.test" } }, true],
  ["usage-flag", { company: { domain: "acme.test" } }, true],
  ["override-flag", { company: { domain: "acme.test" } }, true],
  ["user-flag", { user: { email: "ADA@acme.test" } }, true],
  ["user-flag", { user: { email: "nobody@acme.test" } }, false],
  ["Default-On-Flag", {}, true],
  ["plan-flag", { company: { domain: "unknown.test" } }, false],
  ["trait-flag", { company: { domain: "unknown.test" } }, false],
];

// Wait until the SDK has seen /ready answer 200 (it polls every second).
const deadline = Date.now() + 20000;
let results = [];
for (;;) {
  results = [];
  for (const [flag, ctx, want] of cases) {
    let got;
    try {
      got = await client.checkFlag(ctx, flag);
    } catch (e) {
      got = `error: ${e.message}`;
    }
    results.push({ flag, ctx, want, got });
  }
  if (results.every((r) => r.got === r.want) || Date.now() > deadline) break;
  await new Promise((r) => setTimeout(r, 500));
}

let failed = 0;
for (const r of results) {
  const ok = r.got === r.want;
  if (!ok) failed++;
  console.log(
    `${ok ? "PASS" : "FAIL"} ${r.flag} ${JSON.stringify(r.ctx)} -> ${r.got} (want ${r.want})`,
  );
}
console.log(`${results.length - failed} passed, ${failed} failed`);
await client.close?.();
await redis.quit();
process.exit(failed ? 1 : 0);
