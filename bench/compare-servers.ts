/**
 * Child process for the side-by-side HTTP comparison (bench/compare.ts): the upstream, the bare
 * @fastify/http-proxy or the gateway, by argv[2]. Prints "READY <url>" once listening.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createWriteStream } from 'node:fs';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const [mode, argJson] = process.argv.slice(2);
const arg = JSON.parse(argJson ?? '{}') as Record<string, any>;
const ROOT = fileURLToPath(new URL('../', import.meta.url));

function ready(url: string): void {
  process.stdout.write(`READY ${url}\n`);
}

if (mode === 'upstream') {
  // About 1 KB of JSON, like a small record answer.
  const record = { ok: true, service: 'bench-upstream', synthetic: true, items: Array.from({ length: 8 }, (_, i) => ({ id: 100000 + i, name: `Bản ghi giả lập ${i}`, commune: 'phuong-nha-trang', updatedAt: '2026-01-01T00:00:00+07:00' })) };
  const body = JSON.stringify(record);
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  server.listen(0, '127.0.0.1', () => ready(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
} else if (mode === 'bare') {
  const { default: Fastify } = await import('fastify');
  const { default: httpProxy } = await import('@fastify/http-proxy');
  const app = Fastify({ logger: false, keepAliveTimeout: 120_000 });
  await app.register(httpProxy, { upstream: arg.upstream, prefix: '/bench', rewritePrefix: '' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  ready(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);
} else if (mode === 'gateway') {
  const { parseConfig } = await import('../gateway/config.js');
  const { startGateway } = await import('../gateway/server.js');
  const sink = arg.eventsFile ? createWriteStream(arg.eventsFile) : new Writable({ write: (_c, _e, done) => done() });
  const gateway = await startGateway(parseConfig(arg.config, 'bench', ROOT), { decisionLog: sink as never });
  if (arg.devices) {
    // (g): the official's device, enrolled and approved as an admin would.
    const { DeviceRegistry, devicePublicKey } = await import('../identity/devices.js');
    const registry = new DeviceRegistry(gateway.runtime.store);
    for (const d of arg.devices as { jwk: unknown; owner: string }[]) {
      const { id } = await devicePublicKey(d.jwk);
      await registry.enrol({ jwk: d.jwk, name: 'Thiết bị đo (bench)', ownerNationalId: d.owner });
      await registry.approve(id, '056179000006');
    }
  }
  process.on(
    'SIGTERM',
    () =>
      void gateway.close().then(
        () => process.exit(0),
        () => process.exit(1),
      ),
  );
  ready(gateway.url);
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
