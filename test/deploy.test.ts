import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/harness.js';

/**
 * The container image and the compose topology, checked as files: there is no container engine
 * on the test machines, so what must hold of them is read from the Dockerfile and the compose
 * file themselves.
 */

const compose = parseYaml(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, any>; secrets: Record<string, { file: string }>; volumes: Record<string, unknown> };
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const production = parseYaml(readFileSync(join(ROOT, 'docs/ztgate.production.yaml'), 'utf8')) as Record<string, any>;
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The instructions of the Dockerfile's last stage (the image that runs). */
function finalStage(): { op: string; args: string }[] {
  const joined = dockerfile.replace(/\\\n\s*/g, ' ');
  const lines = joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const from = lines
    .map((l, i) => (l.startsWith('FROM ') ? i : -1))
    .filter((i) => i >= 0)
    .at(-1)!;
  return lines.slice(from).map((l) => ({ op: l.split(' ')[0]!, args: l.slice(l.indexOf(' ') + 1) }));
}

const gateways = Object.entries(compose.services).filter(([, s]) => s.command?.[0] === 'start');
const inProduction = (s: any) => (s.profiles ?? []).includes('production');
const service = (image: RegExp) => Object.entries(compose.services).filter(([, s]) => inProduction(s) && image.test(String(s.image ?? '')));

describe('the container image (Dockerfile)', () => {
  const stage = finalStage();
  it('runs as an unprivileged user, with everything it writes on a volume owned by that user', () => {
    const user = stage.filter((i) => i.op === 'USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(stage.some((i) => i.op === 'VOLUME' && i.args.includes('/data'))).toBe(true);
    const run = stage
      .filter((i) => i.op === 'RUN')
      .map((i) => i.args)
      .join(' && ');
    expect(run).toMatch(new RegExp(`chown ${user}(:${user})? /data`));
    // The demo writes under <repo>/.data: that must be the volume, not the read-only image.
    expect(run).toMatch(/ln -s \/data \/app\/\.data/);
  });

  it('the demo config writes only under .data (the volume), relative to the image', () => {
    const demo = parseYaml(readFileSync(join(ROOT, 'demo/ztgate.demo.yaml'), 'utf8')) as Record<string, any>;
    const written = [demo.policy?.versionsDir, demo.audit?.spoolDir, demo.audit?.chain?.file].filter(Boolean) as string[];
    expect(written.length).toBeGreaterThan(0);
    for (const p of written) expect(resolve('/app/demo', p).startsWith('/app/.data/'), p).toBe(true);
  });

  it('has a health check against /readyz, and its build copies only folders that exist', () => {
    expect(stage.some((i) => i.op === 'HEALTHCHECK' && i.args.includes('/readyz'))).toBe(true);
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of m[1]!.split(/\s+/).filter((s) => !s.startsWith('--'))) expect(existsSync(join(ROOT, src)), src).toBe(true);
    }
  });

  it('the production image (the default, last stage) carries no demo/: it copies the product tree, from which demo/ and dist/demo/ were removed', () => {
    const copies = stage.filter((i) => i.op === 'COPY' && i.args.includes('--from='));
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) {
      const [src] = copy.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      const made = new RegExp(`cp -a /app ${src} && rm -rf ${src}/demo ${src}/dist/demo`);
      expect(dockerfile, `COPY ${copy.args}`).toMatch(made);
    }
    expect(stage.find((i) => i.op === 'ENTRYPOINT')?.args).toMatch(/^\["node", (".+", )?"dist\/gateway\/cli\.js"\]$/);
    expect(stage.find((i) => i.op === 'CMD')?.args).not.toMatch(/demo/);
  });

  it('the demo image is its own target, run by the demo entry (dist/demo/cli.js), and docker compose builds that target for ztgate-demo', () => {
    const demoStage = dockerfile.slice(dockerfile.indexOf('AS demo\n'));
    expect(demoStage.slice(0, demoStage.indexOf('\nFROM '))).toMatch(/\nENTRYPOINT \["node", (".+", )?"dist\/demo\/cli\.js"\]\n/);
    expect(compose.services['ztgate-demo'].build.target).toBe('demo');
  });

  it('its build copies every source folder the build compiles (a new top-level folder such as core/ included)', () => {
    const build = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
    const copied = new Set([...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/)));
    expect(build.include.length).toBeGreaterThan(0);
    for (const folder of build.include) expect(copied.has(folder), `COPY ${folder}`).toBe(true);
  });
});

describe('the production topology (docker-compose.yml, profile production)', () => {
  it('two gateway instances, haproxy in front, Redis with persistence and three Sentinels, a real IdP, a syslog receiver', () => {
    expect(gateways.filter(([, s]) => inProduction(s)).length).toBeGreaterThanOrEqual(2);
    expect(service(/^haproxy:/)).toHaveLength(1);
    expect(service(/^quay\.io\/keycloak\/keycloak:/).length + service(/lemonldap/i).length).toBe(1);
    expect(service(/syslog-ng|rsyslog/)).toHaveLength(1);
    const redis = service(/^redis:/);
    const sentinels = redis.filter(([, s]) => JSON.stringify(s.command).includes('redis-sentinel'));
    expect(sentinels.length).toBeGreaterThanOrEqual(3);
    const redisConf = readFileSync(join(ROOT, 'deploy/redis/redis.conf'), 'utf8');
    expect(redisConf).toMatch(/^appendonly yes$/m);
    const sentinelConf = readFileSync(join(ROOT, 'deploy/redis/sentinel.conf'), 'utf8');
    const master = /^sentinel monitor (\S+) (\S+) (\d+) (\d+)$/m.exec(sentinelConf);
    expect(master && compose.services[master[2]!]).toBeTruthy();
    expect(Number(master![4])).toBeGreaterThan(sentinels.length / 2 - 1); // a majority decides a failover
  });

  it('every gateway: read-only root, unprivileged, its own /data volume, a health check, the production config mounted read-only', () => {
    for (const [name, s] of gateways.filter(([, g]) => inProduction(g))) {
      expect(s.read_only, name).toBe(true);
      expect(s.user, name).toBe('node');
      expect(s.healthcheck?.test?.join(' '), name).toContain('/readyz');
      const volumes: string[] = s.volumes;
      const data = volumes.find((v) => v.split(':')[1] === '/data');
      expect(data, `${name} mounts a volume at /data`).toBeDefined();
      expect(Object.keys(compose.volumes)).toContain(data!.split(':')[0]);
      expect(volumes).toContain('./docs/ztgate.production.yaml:/etc/ztgate/ztgate.yaml:ro');
      // Every file the config names is mounted (config files) or a secret; what it writes is under /data.
      const targets = volumes.map((v) => v.split(':')[1]!);
      const named = [production.policy.model, production.policy.policy, production.identity.roster.file, production.assertion.keyFile, production.identity.session.encryptionKeyFile, production.audit.chain.signingKeyFile, ...production.audit.sinks.map((k: any) => k.caFile).filter(Boolean)];
      for (const file of named) {
        if (file.startsWith('/run/secrets/')) expect(s.secrets, `${name}: secret for ${file}`).toContain(file.slice('/run/secrets/'.length));
        else expect(targets, `${name}: mount for ${file}`).toContain(file);
      }
      for (const written of [production.audit.chain.file, production.audit.spoolDir]) expect(written.startsWith('/data/'), written).toBe(true);
    }
  });

  it('the gateways find Redis through the Sentinels the topology runs, and keep the durable copy in its PostgreSQL', () => {
    const sentinelConf = readFileSync(join(ROOT, 'deploy/redis/sentinel.conf'), 'utf8');
    const monitored = /^sentinel monitor (\S+) /m.exec(sentinelConf)![1];
    const port = /^port (\d+)$/m.exec(sentinelConf)![1];
    expect(production.state.redisUrl, 'a single Redis would not follow a failover').toBeUndefined();
    expect(production.state.sentinel.masterName).toBe(monitored);
    const sentinelServices = Object.entries(compose.services)
      .filter(([, s]) => inProduction(s) && JSON.stringify(s.command ?? '').includes('redis-sentinel'))
      .map(([n]) => n);
    expect([...production.state.sentinel.sentinels].sort()).toEqual(sentinelServices.map((n) => `${n}:${port}`).sort());
    const durable = new URL(production.state.durable.postgresUrl);
    expect(durable.password, 'the password comes from PGPASSFILE, not the config').toBe('');
    const db = compose.services[durable.hostname];
    expect(db && inProduction(db) && /^postgres:/.test(db.image), `${durable.hostname} is a PostgreSQL of the production profile`).toBe(true);
    expect(db.environment.POSTGRES_DB).toBe(durable.pathname.slice(1));
    expect(db.environment.POSTGRES_USER).toBe(durable.username);
    for (const [name, s] of gateways.filter(([, g]) => inProduction(g))) {
      const pgpass = String(s.environment?.PGPASSFILE ?? '');
      expect(pgpass.startsWith('/run/secrets/'), `${name}: PGPASSFILE is a secret`).toBe(true);
      expect(s.secrets, name).toContain(pgpass.slice('/run/secrets/'.length));
      for (const dep of [durable.hostname, ...sentinelServices]) expect(s.depends_on?.[dep]?.condition, `${name} waits for ${dep}`).toBe('service_healthy');
    }
  });

  it('haproxy balances over every gateway with health checks, and retries only idempotent requests', () => {
    const cfg = readFileSync(join(ROOT, 'deploy/haproxy/haproxy.cfg'), 'utf8');
    for (const [name] of gateways.filter(([, g]) => inProduction(g))) expect(cfg).toMatch(new RegExp(`^\\s*server ${name} ${name}:${production.listen.port} check$`, 'm'));
    expect(cfg).toMatch(/backend ztgate_data\n(?:.*\n)*?\s*option httpchk GET \/readyz/);
    expect(cfg).toMatch(/http-request disable-l7-retry unless METH_GET \|\| METH_HEAD/);
    const idle = /timeout http-keep-alive (\d+)s/.exec(cfg);
    expect(Number(idle![1]) * 1000).toBeLessThan(production.limits.idleTimeoutMs);
  });

  it('every file it mounts exists; every secret is generated outside the repository, as README "Operations" says', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      for (const v of (s.volumes ?? []) as string[]) {
        const src = v.split(':')[0]!;
        if (src.startsWith('./')) expect(existsSync(join(ROOT, src)), `${name}: ${src}`).toBe(true);
      }
      for (const secret of (s.secrets ?? []) as (string | { source: string })[]) {
        expect(compose.secrets[typeof secret === 'string' ? secret : secret.source], `${name}: secret ${JSON.stringify(secret)}`).toBeDefined();
      }
    }
    const gitignore = readFileSync(join(ROOT, '.gitignore'), 'utf8');
    for (const [name, { file }] of Object.entries(compose.secrets)) {
      expect(file.startsWith('./deploy/secrets/'), name).toBe(true);
      expect(readme, `README tells how to make ${file}`).toContain(file.slice(2));
    }
    expect(gitignore).toMatch(/^deploy\/secrets\/$/m);
  });
});
