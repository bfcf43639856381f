import { isMap, isSeq, LineCounter, parseDocument, type Node } from 'yaml';

/**
 * Where in a YAML configuration file each problem is: the checks name keys
 * (`routes[1].securityLevel: …`), a person editing the file wants the line. A problem about a key
 * that is not there (missing, or unknown) points at its parent, or at the unknown key itself.
 */
export function withLines(text: string, problems: readonly string[]): string[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter });
  const lineOf = (node: Node | null | undefined) => (node?.range ? lineCounter.linePos(node.range[0]).line : null);
  return problems.map((problem) => {
    const m = /^([^\s:]+): (.*)$/s.exec(problem);
    if (!m || (m[1] === '(root)' && !/unknown key "/.test(m[2]!))) return problem;
    const path =
      m[1] === '(root)'
        ? []
        : m[1]!
            .split(/\.|\[(\d+)\]/)
            .filter((p) => p !== undefined && p !== '')
            .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
    let line: number | null = null;
    // An unknown key: its own line.
    const unknown = /unknown key "([^"]+)"/.exec(m[2]!)?.[1];
    const parent = path.length === 0 ? doc.contents : (doc.getIn(path, true) as Node | undefined);
    if (unknown && isMap(parent)) line = lineOf(parent.items.find((pair) => String((pair.key as { value?: unknown } | null)?.value) === unknown)?.key as Node | undefined);
    // Else the deepest part of the path that exists.
    for (let n = path.length; line === null && n > 0; n--) {
      const node = doc.getIn(path.slice(0, n), true) as Node | undefined;
      if (node && typeof node === 'object') line = lineOf(node);
    }
    if (line === null && (isMap(parent) || isSeq(parent))) line = lineOf(parent);
    return line === null ? problem : `line ${line}: ${problem}`;
  });
}
