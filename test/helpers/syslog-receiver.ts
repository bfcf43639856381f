import { createServer, type Server, type Socket } from 'node:net';

/** A syslog receiver over TCP: RFC 6587 octet counting, RFC 5424 header, JSON message. */
export class SyslogReceiver {
  readonly messages: { raw: string; event: Record<string, any> }[] = [];
  private server: Server | null = null;
  private sockets = new Set<Socket>();
  constructor(readonly port: number) {}

  async start(): Promise<void> {
    const server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      let buf = Buffer.alloc(0);
      socket.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        for (;;) {
          const sp = buf.indexOf(0x20);
          if (sp === -1) break;
          const len = Number(buf.subarray(0, sp).toString());
          if (!Number.isInteger(len) || len <= 0) throw new Error(`bad frame: ${buf.subarray(0, 40).toString()}`);
          if (buf.length < sp + 1 + len) break;
          const raw = buf.subarray(sp + 1, sp + 1 + len).toString('utf8');
          buf = buf.subarray(sp + 1 + len);
          const m = /^<(\d+)>1 (\S+) (\S+) ztgate (\d+) (\S+) - (.*)$/s.exec(raw);
          if (!m) throw new Error(`not RFC 5424: ${raw.slice(0, 80)}`);
          this.messages.push({ raw, event: JSON.parse(m[6]!) });
        }
      });
      socket.on('error', () => undefined);
      socket.on('end', () => socket.end());
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.server = server;
  }

  /** Goes away abruptly, like a SIEM collector that crashed: open connections are reset. */
  async stop(): Promise<void> {
    const server = this.server!;
    this.server = null;
    for (const s of this.sockets) s.resetAndDestroy();
    await new Promise((resolve) => server.close(resolve));
  }

  ids(): string[] {
    return this.messages.map((m) => m.event.event.id);
  }
}

export async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
