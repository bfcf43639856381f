// ESLint: typescript-eslint's recommended rules without type information (a syntax-only pass
// keeps `npm test` fast), no explicit `any` in product code. Formatting is Prettier's.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const PRODUCT = ['core/**/*.ts', 'identity/**/*.ts', 'policies/**/*.ts', 'gateway/**/*.ts', 'demo/**/*.ts', 'admin-ui/**/*.js'];

export default tseslint.config(
  { ignores: ['dist/**', 'coverage/**', 'bench/results/**'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      // `_`-names are the house way to drop a value (`const { secret: _s, ...rest } = x`).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
      // Edge hygiene and parsers match control characters on purpose, to refuse them.
      'no-control-regex': 'off',
      // `catch {}` where a failure means "absent" (an optional file, an unparsable URL) is deliberate.
      'no-empty': ['error', { allowEmptyCatch: true }],
      // It flags the initial value of `let x = fallback; try { x = … } catch {}`.
      'no-useless-assignment': 'off',
      // Declaration merging: fastify's request carries the pipeline state.
      '@typescript-eslint/no-empty-object-type': ['error', { allowInterfaces: 'with-single-extends' }],
      '@typescript-eslint/no-unused-expressions': ['error', { allowShortCircuit: true, allowTernary: true }],
    },
  },
  {
    files: ['admin-ui/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    files: PRODUCT,
    rules: { '@typescript-eslint/no-explicit-any': 'error' },
  },
  {
    // Tests and benchmarks poke at raw JSON and private shapes; `any` there is a convenience, not an interface.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
