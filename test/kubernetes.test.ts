import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import ts from 'typescript';
import { parse, parseAllDocuments } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../gateway/config.js';
import { ROOT } from './helpers/harness.js';

/**
 * deploy/kubernetes/ against the Kubernetes API schemas of kubernetes-models, twice over:
 * its validators (types, required fields, formats) and its TypeScript declarations, through the
 * compiler's excess-property check — a misspelt or invented field anywhere fails, as
 * `kubectl apply --validate=strict` would fail it. Then the production topology itself.
 */

const DIR = join(ROOT, 'deploy/kubernetes');

interface Manifest {
  readonly at: string;
  readonly doc: Record<string, any>;
}

function load(dir: string): Manifest[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((file) =>
      parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((d, i) => {
        expect(d.errors, `${file} #${i + 1}`).toEqual([]);
        return { at: `${file} #${i + 1}`, doc: d.toJS() as Record<string, any> };
      }),
    );
}

const modulePath = (m: Manifest) => `kubernetes-models/${m.doc.apiVersion}/${m.doc.kind}`;

/** Problems kubernetes-models' validators find: wrong types, missing required fields, bad formats. */
async function validatorProblems(manifests: readonly Manifest[]): Promise<string[]> {
  const problems: string[] = [];
  for (const m of manifests) {
    let Model: new (data: unknown) => { validate(): void };
    try {
      Model = (await import(modulePath(m)))[m.doc.kind];
    } catch {
      problems.push(`${m.at}: no ${m.doc.kind} in ${m.doc.apiVersion}`);
      continue;
    }
    try {
      new Model(m.doc).validate();
    } catch (err) {
      problems.push(`${m.at}: ${(err as Error).message}`);
    }
  }
  return problems;
}

/** Problems the compiler finds with each manifest typed as its kubernetes-models interface: unknown fields included. */
function typeProblems(manifests: readonly Manifest[]): string[] {
  const file = join(DIR, 'manifests.check.ts');
  const lines: string[] = [];
  const owner: string[] = [];
  manifests.forEach((m, i) => {
    lines.push(`import type { I${m.doc.kind} as T${i} } from '${modulePath(m)}';`);
    owner.push(m.at);
  });
  manifests.forEach((m, i) => {
    lines.push(`export const m${i}: T${i} = ${JSON.stringify(m.doc)};`);
    owner.push(m.at);
  });
  const source = lines.join('\n');
  const options: ts.CompilerOptions = { strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, skipLibCheck: true, types: [] };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, lang, ...rest) => (name === file ? ts.createSourceFile(name, source, lang) : getSourceFile.call(host, name, lang, ...rest));
  host.fileExists = (name) => name === file || fileExists.call(host, name);
  host.readFile = (name) => (name === file ? source : readFile.call(host, name));
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    return `${owner[line] ?? '?'}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}

const manifests = load(DIR);
const find = (kind: string, name?: string) => {
  const found = manifests.filter((m) => m.doc.kind === kind && (name === undefined || m.doc.metadata.name === name));
  expect(found, `${kind} ${name ?? ''}`).toHaveLength(1);
  return found[0]!.doc;
};

describe('deploy/kubernetes validates against the Kubernetes API schemas', () => {
  it('every manifest passes the validators and the strict type check', async () => {
    expect(manifests.length).toBeGreaterThanOrEqual(8);
    expect(await validatorProblems(manifests)).toEqual([]);
    expect(typeProblems(manifests)).toEqual([]);
  });

  it('a misspelt field, a field in the wrong place, a wrong type, a missing required field and an unknown kind each fail, naming the manifest', async () => {
    const deployment = manifests.find((m) => m.doc.kind === 'Deployment')!;
    const broken = (at: string, change: (doc: any) => void): Manifest => {
      const doc = structuredClone(deployment.doc);
      change(doc);
      return { at, doc };
    };
    const misspelt = broken('misspelt', (d) => (d.spec.template.spec.containers[0].readinessProbe.periodSecond = 5));
    const misplaced = broken('misplaced', (d) => (d.spec.template.spec.readOnlyRootFilesystem = true));
    const wrongType = broken('wrong-type', (d) => (d.spec.template.spec.containers[0].ports[0].containerPort = '8080'));
    const missing = broken('missing', (d) => delete d.spec.template.spec.containers[0].name);
    const unknownKind: Manifest = { at: 'unknown-kind', doc: { ...deployment.doc, kind: 'Deploymnet' } };

    const types = typeProblems([misspelt, misplaced, wrongType, missing]);
    expect(types.find((p) => p.startsWith('misspelt:'))).toMatch(/"periodSecond".* does not exist in type 'IProbe'/);
    expect(types.find((p) => p.startsWith('misplaced:'))).toMatch(/"readOnlyRootFilesystem".* does not exist in type 'IPodSpec'/);
    expect(types.find((p) => p.startsWith('wrong-type:'))).toMatch(/string.*number/);
    expect(types.find((p) => p.startsWith('missing:'))).toMatch(/"name".* is missing in type .* but required in type 'IContainer'/);

    const validators = await validatorProblems([wrongType, missing, unknownKind]);
    expect(validators).toEqual([expect.stringMatching(/^wrong-type: .*containerPort must be integer/), expect.stringMatching(/^missing: .*containers\/0 must have required property name/), 'unknown-kind: no Deploymnet in apps/v1']);
  });
});

describe('the production topology', () => {
  const deployment = find('Deployment');
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  const port = (name: string) => container.ports.find((p: any) => p.name === name)?.containerPort;
  const gatewayConfig = parse(readFileSync(join(DIR, 'config/ztgate.yaml'), 'utf8'));

  it('three probes, on the fixed paths, with resource requests', () => {
    expect(container.livenessProbe.httpGet.path).toBe('/livez');
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    expect(container.startupProbe.httpGet.path).toBe('/startupz');
    for (const probe of [container.livenessProbe, container.readinessProbe, container.startupProbe]) expect(probe.httpGet.port).toBe('ops');
    expect(container.resources.requests).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
    expect(container.resources.limits.memory).toBeDefined();
  });

  it('ports as the gateway configuration says: data 8080, admin 8081, ops 9464, all listening beyond loopback', () => {
    expect({ http: port('http'), admin: port('admin'), ops: port('ops') }).toEqual({ http: 8080, admin: 8081, ops: 9464 });
    expect(gatewayConfig.listen).toMatchObject({ host: '0.0.0.0', port: 8080 });
    expect(gatewayConfig.admin.listen).toMatchObject({ host: '0.0.0.0', port: 8081 });
    expect(gatewayConfig.ops.listen).toEqual({ host: '0.0.0.0', port: 9464 });
    // Readiness fails before the listeners close: the drain outlasts the probe's period × failures.
    expect(gatewayConfig.probes.drainDelayMs).toBeGreaterThan(container.readinessProbe.periodSeconds * container.readinessProbe.failureThreshold * 1000);
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(gatewayConfig.probes.drainDelayMs);
  });

  it('read-only root filesystem, non-root, no privilege escalation, no capabilities; writable only what is mounted', () => {
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.automountServiceAccountToken).toBe(false);
    const writable = container.volumeMounts.filter((v: any) => !v.readOnly).map((v: any) => v.name);
    for (const name of writable) expect(pod.volumes.find((v: any) => v.name === name).emptyDir, name).toBeDefined();
  });

  it('secrets are files: the configuration, keys and certificates come from Secret volumes readable by the owner only, never from the environment', () => {
    const volumeOf = (path: string) => {
      const mount = container.volumeMounts.filter((v: any) => path.startsWith(`${v.mountPath}/`)).sort((a: any, b: any) => b.mountPath.length - a.mountPath.length)[0];
      expect(mount, path).toBeDefined();
      return pod.volumes.find((v: any) => v.name === mount.name);
    };
    const configPath = container.args[container.args.indexOf('--config') + 1];
    const secretFiles = [configPath, gatewayConfig.listen.tls.certFile, gatewayConfig.listen.tls.keyFile, gatewayConfig.identity.session.encryptionKeyFile, gatewayConfig.assertion.keyFile, gatewayConfig.assertion.mlDsaKeyFile, gatewayConfig.audit.chain.signingKeyFile];
    for (const file of secretFiles) {
      const volume = volumeOf(file);
      expect(volume.secret, file).toBeDefined();
      expect(volume.secret.defaultMode, file).toBe(0o400);
    }
    for (const file of [gatewayConfig.policy.model, gatewayConfig.policy.policy]) expect(volumeOf(file).configMap, file).toBeDefined();
    for (const file of [gatewayConfig.audit.spoolDir + '/x', gatewayConfig.audit.chain.file]) expect(volumeOf(file).emptyDir, file).toBeDefined();
    expect(JSON.stringify(container.env ?? [])).not.toMatch(/secretKeyRef/);
    expect(container.envFrom).toBeUndefined();
  });

  it('a PodDisruptionBudget and a HorizontalPodAutoscaler on the same pods, consistent with each other', () => {
    const pdb = find('PodDisruptionBudget');
    const hpa = find('HorizontalPodAutoscaler');
    expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
    expect(hpa.spec.minReplicas).toBeGreaterThan(pdb.spec.minAvailable);
    expect(deployment.spec.replicas).toBeUndefined();
  });

  it('NetworkPolicy: default deny; the data port only from the load balancer; admin and ops ports only from the ops network', () => {
    const policies = manifests.filter((m) => m.doc.kind === 'NetworkPolicy').map((m) => m.doc);
    for (const p of policies) expect(p.spec.podSelector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'ztgate' });
    const deny = find('NetworkPolicy', 'ztgate-default-deny');
    expect(deny.spec).toEqual({ podSelector: deny.spec.podSelector, policyTypes: ['Ingress'] });
    const allowed = new Map<number, string[]>();
    for (const p of policies) {
      for (const rule of p.spec.ingress ?? []) {
        expect(rule.from?.length, `${p.metadata.name}: a rule without "from" admits everyone`).toBeGreaterThan(0);
        expect(rule.ports?.length, `${p.metadata.name}: a rule without ports opens every port`).toBeGreaterThan(0);
        const sources = rule.from.map((f: any) => (f.ipBlock ? `ip:${f.ipBlock.cidr}` : `ns:${f.namespaceSelector?.matchLabels?.['ztgate.gov.vn/zone']}`));
        for (const { port } of rule.ports) allowed.set(port, [...(allowed.get(port) ?? []), ...sources]);
      }
    }
    const lb = find('NetworkPolicy', 'ztgate-data').spec.ingress[0].from;
    const ops = find('NetworkPolicy', 'ztgate-ops').spec.ingress[0].from;
    expect(lb.some((f: any) => f.namespaceSelector?.matchLabels?.['ztgate.gov.vn/zone'] === 'load-balancer')).toBe(true);
    expect(ops.some((f: any) => f.namespaceSelector?.matchLabels?.['ztgate.gov.vn/zone'] === 'ops')).toBe(true);
    expect([...allowed.keys()].sort()).toEqual([8080, 8081, 9464]);
    expect(allowed.get(8080)!.every((s) => s === 'ns:load-balancer' || s.startsWith('ip:'))).toBe(true);
    expect(allowed.get(8080)).not.toContain('ns:ops');
    for (const p of [8081, 9464])
      expect(
        allowed.get(p)!.every((s) => s === 'ns:ops' || s.startsWith('ip:')),
        String(p),
      ).toBe(true);
    // No address range is shared between the load balancer and the ops network.
    const ips = (p: number) => allowed.get(p)!.filter((s) => s.startsWith('ip:'));
    for (const ip of ips(8080)) expect(ips(8081)).not.toContain(ip);
  });
});

describe('the gateway configuration for Kubernetes', () => {
  let dir: string | undefined;
  afterAll(() => dir && rmSync(dir, { recursive: true, force: true }));

  it('is accepted by the gateway, with its files where the Secrets and the ConfigMap put them', () => {
    dir = mkdtempSync(join(tmpdir(), 'ztgate-k8s-'));
    const text = readFileSync(join(DIR, 'config/ztgate.yaml'), 'utf8').replaceAll('/etc/ztgate/', `${dir}/etc/ztgate/`).replaceAll('/var/lib/ztgate/', `${dir}/var/lib/ztgate/`);
    const doc = parse(text);
    const place = (path: string, content: string | Buffer) => {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, content);
    };
    const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'tls.key', '-out', 'tls.crt', '-days', '2', '-subj', '/CN=ztgate (synthetic test)');
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=device CA (synthetic test)', '-addext', 'basicConstraints=critical,CA:TRUE');
    place(doc.listen.tls.certFile, readFileSync(join(dir, 'tls.crt')));
    place(doc.listen.tls.keyFile, readFileSync(join(dir, 'tls.key')));
    place(doc.listen.tls.clientCaFile, readFileSync(join(dir, 'ca.crt')));
    place(doc.identity.session.encryptionKeyFile, Buffer.alloc(32, 7).toString('hex'));
    for (const f of [doc.policy.model, doc.policy.policy, doc.policy.conditions]) place(f, '');
    const config = parseConfig(doc, 'deploy/kubernetes/config/ztgate.yaml', ROOT);
    expect(config.ops?.listen).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(config.probes.drainDelayMs).toBe(15_000);
    expect(config.listen.tls!.groups[0]).toBe('X25519MLKEM768');
    expect(config.assertion.algorithms).toEqual(['ES256', 'ML-DSA-65']);
    expect(config.state.backend).toBe('redis');
  });
});
