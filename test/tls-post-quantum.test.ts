import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type EphemeralKeyInfo } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../core/errors.js';
import { parseConfig } from '../gateway/config.js';
import { DEFAULT_TLS_GROUPS, httpsServerOptions } from '../gateway/tls.js';
import { ROOT, startHarness, type Harness } from './helpers/harness.js';

/**
 * The hybrid post-quantum key exchange X25519MLKEM768 on both listeners, through real TLS
 * handshakes. The client is Node's own TLS stack (OpenSSL 3.5), which reports the group the
 * server chose; the server certificate comes from the openssl CLI (synthetic, temporary folder).
 */

let dir: string;
let cert: string;
let key: string;
let h: Harness;
let doc: Record<string, any>;

interface Handshake {
  readonly group: string | undefined;
  readonly protocol: string | null;
}

/** One handshake offering `groups` (client order); resolves with the group the server picked. */
function handshake(url: string, groups: string, extra: { maxVersion?: 'TLSv1.2' } = {}): Promise<Handshake> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), ecdhCurve: groups, rejectUnauthorized: false, ...extra }, () => {
      const info = socket.getEphemeralKeyInfo() as EphemeralKeyInfo | null;
      const result = { group: info?.name, protocol: socket.getProtocol() };
      socket.end();
      resolve(result);
    });
    socket.on('error', reject);
  });
}

const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ztgate-pq-'));
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'gateway.key', '-out', 'gateway.crt', '-days', '2', '-subj', '/CN=ztgate (synthetic test)', '-addext', 'subjectAltName=IP:127.0.0.1');
  cert = join(dir, 'gateway.crt');
  key = join(dir, 'gateway.key');
  h = await startHarness({
    configure(d) {
      d.listen.tls = { certFile: cert, keyFile: key };
      d.publicUrl = d.publicUrl.replace('http:', 'https:');
      d.admin.listen.tls = { certFile: cert, keyFile: key };
      doc = structuredClone(d);
    },
  });
}, 60_000);

afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('post-quantum TLS key exchange (X25519MLKEM768) by default', () => {
  it('the default group list puts the hybrid group first', () => {
    expect(h.config.listen.tls!.groups).toEqual([...DEFAULT_TLS_GROUPS]);
    expect(DEFAULT_TLS_GROUPS[0]).toBe('X25519MLKEM768');
    expect(h.config.admin!.listen.tls!.groups).toEqual([...DEFAULT_TLS_GROUPS]);
  });

  for (const listener of ['data', 'admin'] as const) {
    const url = () => (listener === 'data' ? h.gateway.url : h.gateway.adminUrl!);

    it(`${listener} listener: a client that offers only X25519MLKEM768 completes the handshake`, async () => {
      expect(await handshake(url(), 'X25519MLKEM768')).toEqual({ group: 'X25519MLKEM768', protocol: 'TLSv1.3' });
    });

    it(`${listener} listener: a client that prefers classical groups but also offers X25519MLKEM768 gets X25519MLKEM768`, async () => {
      // The client's first key share is X25519; the server's order wins (HelloRetryRequest).
      expect(await handshake(url(), 'X25519:P-256:X25519MLKEM768')).toEqual({ group: 'X25519MLKEM768', protocol: 'TLSv1.3' });
    });

    it(`${listener} listener: a classical-only client still connects, on its own group`, async () => {
      expect(await handshake(url(), 'P-256')).toEqual({ group: 'prime256v1', protocol: 'TLSv1.3' });
      expect((await handshake(url(), 'X25519:P-256', { maxVersion: 'TLSv1.2' })).protocol).toBe('TLSv1.2');
    });
  }

  it('requests over the post-quantum handshake are served', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const { hostname, port } = new URL(h.gateway.url);
      const socket = connect({ host: hostname, port: Number(port), ecdhCurve: 'X25519MLKEM768', rejectUnauthorized: false }, () => {
        socket.write(`GET /.well-known/jwks.json HTTP/1.1\r\nhost: ${hostname}\r\nconnection: close\r\n\r\n`);
      });
      let text = '';
      socket
        .setEncoding('utf8')
        .on('data', (d: string) => (text += d))
        .on('end', () => resolve(text))
        .on('error', reject);
    });
    expect(body).toMatch(/^HTTP\/1\.1 200/);
    expect(body).toContain('"keys"');
  });
});

describe('the group list is configurable, and checked', () => {
  const configWith = (groups: unknown) => {
    const d = structuredClone(doc);
    d.listen.tls = { certFile: cert, keyFile: key, groups };
    return parseConfig(d, 'groups-test', ROOT);
  };

  async function serverFor(groups: string[]): Promise<{ url: string; close: () => void }> {
    const server = createServer(httpsServerOptions(configWith(groups).listen.tls!), (s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    return { url: `https://127.0.0.1:${port}`, close: () => server.close() };
  }

  it('classical groups only: a client offering only X25519MLKEM768 is refused, a classical one gets X25519', async () => {
    const s = await serverFor(['X25519', 'P-256']);
    try {
      await expect(handshake(s.url, 'X25519MLKEM768')).rejects.toThrow(/handshake failure/);
      expect((await handshake(s.url, 'X25519MLKEM768:X25519')).group).toBe('X25519');
    } finally {
      s.close();
    }
  });

  it('the server order is the configured order: P-256 before X25519MLKEM768 gives P-256', async () => {
    const s = await serverFor(['P-256', 'X25519MLKEM768']);
    try {
      expect((await handshake(s.url, 'X25519MLKEM768:P-256')).group).toBe('prime256v1');
    } finally {
      s.close();
    }
  });

  it('an unknown group is a configuration error naming it', () => {
    expect(() => configWith(['X25519MLKEM768', 'X25519KYBER9000'])).toThrow(ConfigError);
    expect(() => configWith(['X25519MLKEM768', 'X25519KYBER9000'])).toThrow(/listen\.tls\.groups: "X25519KYBER9000" is not a TLS key exchange group/);
  });

  it('OpenSSL list syntax cannot be smuggled in, and the list cannot be empty', () => {
    expect(() => configWith(['X25519MLKEM768:P-256'])).toThrow(/listen\.tls\.groups/);
    expect(() => configWith(['-X25519'])).toThrow(/listen\.tls\.groups/);
    expect(() => configWith([])).toThrow(/listen\.tls\.groups/);
  });
});
