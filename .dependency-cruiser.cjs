/**
 * The layers of docs/architecture.md, as rules `npm run lint:deps` enforces:
 *
 *   core/ → identity/, policies/ → gateway/ (data plane) → gateway/admin/ (management plane)
 *         → composition root (gateway/server.ts, gateway/cli.ts, gateway/cli-main.ts, gateway/cluster.ts)
 *
 * An arrow only points down. demo/, bench/ and test/ sit beside the product and may import it;
 * the product never imports them. Type-only imports count: a type is a dependency too.
 */

/** Where the product's own code is; everything else an import reaches is Node.js or an npm package. */
const PRODUCT = '^(core|identity|policies|gateway)/';
/** The files that build the planes and start the process: the only ones that wire the admin plane in. */
const COMPOSITION_ROOT = ['^gateway/server[.]ts$', '^gateway/cli[.]ts$', '^gateway/cli-main[.]ts$', '^gateway/cluster[.]ts$'];
/** What is not the project: Node.js built-ins are dependency type `core`, npm packages resolve into node_modules. */
const OUTSIDE = ['(^|/)node_modules/'];

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycle',
      comment: 'An import cycle: the modules cannot be understood, tested or loaded one before the other.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-imports-nothing-of-the-project',
      comment: 'core/ is the bottom layer: only Node.js, npm packages and core/ itself.',
      severity: 'error',
      from: { path: '^core/' },
      to: { dependencyTypesNot: ['core'], pathNot: ['^core/', ...OUTSIDE] },
    },
    {
      name: 'identity-imports-only-core',
      comment: 'identity/ builds on core/ alone; the gateway supplies config, stores and everything else by parameter.',
      severity: 'error',
      from: { path: '^identity/' },
      to: { dependencyTypesNot: ['core'], pathNot: ['^core/', '^identity/', ...OUTSIDE] },
    },
    {
      name: 'policies-imports-only-core',
      comment: 'policies/ builds on core/ alone: not on the gateway, and not on identity/ internals (Principal is in core/).',
      severity: 'error',
      from: { path: '^policies/' },
      to: { dependencyTypesNot: ['core'], pathNot: ['^core/', '^policies/', ...OUTSIDE] },
    },
    {
      name: 'only-the-composition-root-imports-the-admin-plane',
      comment: 'The data plane and the parts below it never import gateway/admin/; gateway/server.ts wires it in.',
      severity: 'error',
      from: { path: PRODUCT, pathNot: ['^gateway/admin/', ...COMPOSITION_ROOT] },
      to: { path: '^gateway/admin/' },
    },
    {
      name: 'product-never-imports-demo-bench-or-test',
      comment: 'demo/, bench/ and test/ use the product; the product does not depend on them.',
      severity: 'error',
      from: { path: PRODUCT },
      to: { path: '^(demo|bench|test)/' },
    },
  ],
  options: {
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
    // ESM-only packages (typebox) resolve through their package.json `exports` and `.mjs` files.
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.mts', '.js', '.mjs', '.cjs', '.json'] },
  },
};
