/** Checks shared by the configuration sections, for what a JSON Schema cannot say. */

export function isLoopback(hostname: string): boolean {
  return hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]' || hostname === '::1';
}

/** An absolute http(s) URL without credentials, query or fragment; each problem is pushed at `at`. */
export function checkUrl(problems: string[], at: string, value: string, opts: { requireHttpsUnlessLoopback: boolean }): URL | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    problems.push(`${at}: "${value}" is not an absolute URL`);
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    problems.push(`${at}: "${value}" must be an http(s) URL`);
    return undefined;
  }
  if (url.username || url.password) problems.push(`${at}: must not embed credentials`);
  if (url.search || url.hash) problems.push(`${at}: must not carry a query or fragment`);
  if (opts.requireHttpsUnlessLoopback && url.protocol === 'http:' && !isLoopback(url.hostname)) {
    problems.push(`${at}: "${value}" must use https (plain http is accepted only on a loopback address)`);
  }
  return url;
}
