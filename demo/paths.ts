import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The demo's files live in the repository (demo/*.json, demo/data/), while its code runs
 * either from demo/*.ts or from dist/demo/*.js: both sit below the folder holding package.json.
 */
export function findRepoRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`ztgate demo: package.json not found above ${from}`);
    dir = parent;
  }
}

export function demoFile(...segments: string[]): string {
  return join(findRepoRoot(), 'demo', ...segments);
}
