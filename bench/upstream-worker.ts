/** Child process: the trivial upstream (node:http, a small JSON answer). */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { processStats, serveCalls } from './child.js';

let requests = 0;
const server = createServer((req, res) => {
  requests++;
  // Drain any body, then answer.
  req.resume();
  req.on('end', () => {
    const body = `{"ok":true,"service":"bench-upstream","path":${JSON.stringify(req.url ?? '')}}`;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
let connections = 0;
server.on('connection', () => void connections++);
// Longer than any pause between scenarios, so pooled connections are never closed under a client.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.send!({ type: 'ready', url: `http://127.0.0.1:${port}` });
});
serveCalls({ stats: () => ({ ...processStats(), requests, connections }) });
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
