import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A PostgreSQL cluster of the test's own (the machine's one on 5432 is trust-only): initdb into a
 * temporary directory, password authentication (SCRAM-SHA-256 or MD5 per role) in its
 * pg_hba.conf, TLS on with a synthetic CA, on a free loopback port. initdb refuses to run as
 * root, so the cluster runs as the `postgres` OS user when the test runs as root.
 */

const BIN = process.env.PG_BINDIR ?? (existsSync('/usr/lib/postgresql') ? join('/usr/lib/postgresql', readdirSync('/usr/lib/postgresql').sort().at(-1)!, 'bin') : '');

export interface OwnCluster {
  readonly port: number;
  readonly socketDir: string;
  /** The CA that signed the server certificate (CN/SAN 127.0.0.1 and localhost). */
  readonly caFile: string;
  /** A CA that signed nothing the server presents. */
  readonly otherCaFile: string;
  /** Runs SQL as the cluster's superuser (over its Unix socket, trust). */
  sql(statements: string, database?: string): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const runAs = (cmd: string, args: string[]): [string, string[]] => (asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]);

export async function startOwnCluster(hba: string): Promise<OwnCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'ztgate-pgcluster-'));
  const data = join(dir, 'data');
  const socketDir = join(dir, 'socket');
  const pki = join(dir, 'pki');
  execFileSync('mkdir', ['-p', socketDir, pki]);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: pki, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const ca of ['ca', 'other-ca']) {
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${ca}.key`);
    openssl('req', '-x509', '-new', '-key', `${ca}.key`, '-subj', `/CN=${ca} (synthetic test CA)`, '-days', '2', '-out', `${ca}.crt`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  }
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'server.key');
  openssl('req', '-new', '-key', 'server.key', '-subj', '/CN=localhost (synthetic)', '-out', 'server.csr');
  writeFileSync(join(pki, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', '1', '-days', '2', '-out', 'server.crt', '-extfile', 'server.ext');
  chmodSync(join(pki, 'server.key'), 0o600);
  if (asRoot) {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
    execFileSync('chown', ['-R', `${id('-u')}:${id('-g')}`, dir]);
    chownSync(dir, id('-u'), id('-g'));
  }
  const [initdb, initArgs] = runAs(join(BIN, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  execFileSync(initdb, initArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  writeFileSync(join(data, 'pg_hba.conf'), `local all postgres trust\n${hba}`);
  const port = await freePort();
  const [postgres, args] = runAs(join(BIN, 'postgres'), [
    '-D',
    data,
    '-p',
    String(port),
    '-k',
    socketDir,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'fsync=off',
    '-c',
    'shared_buffers=16MB',
    '-c',
    'max_connections=20',
    '-c',
    'ssl=on',
    '-c',
    `ssl_cert_file=${join(pki, 'server.crt')}`,
    '-c',
    `ssl_key_file=${join(pki, 'server.key')}`,
  ]);
  const child: ChildProcess = spawn(postgres, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const sql = (statements: string, database = 'postgres') => execFileSync('psql', ['-X', '-qAt', '-v', 'ON_ERROR_STOP=1', '-h', socketDir, '-p', String(port), '-U', 'postgres', '-d', database, '-c', statements], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`postgres exited: ${stderr}`);
    try {
      execFileSync(join(BIN, 'pg_isready'), ['-q', '-h', socketDir, '-p', String(port)]);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`postgres not ready within 30 s: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    port,
    socketDir,
    caFile: join(pki, 'ca.crt'),
    otherCaFile: join(pki, 'other-ca.crt'),
    sql,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        // Fast shutdown: ends the sessions, no checkpoint wait.
        const [pgctl, stopArgs] = runAs(join(BIN, 'pg_ctl'), ['stop', '-D', data, '-m', 'fast', '-w', '-t', '10']);
        try {
          execFileSync(pgctl, stopArgs, { stdio: 'ignore' });
        } catch {
          child.kill('SIGKILL');
        }
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
