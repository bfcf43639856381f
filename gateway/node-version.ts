/**
 * The oldest Node.js release line the gateway runs on. 24 LTS brings OpenSSL 3.5, which gives the
 * TLS listeners the hybrid post-quantum key exchange X25519MLKEM768 and the assertion signer
 * ML-DSA-65; older lines are out of support (20 ended in April 2026).
 */
export const MIN_NODE_MAJOR = 24;

/** Why this runtime cannot run the gateway, or null when it can. */
export function unsupportedRuntime(version: string = process.version): string | null {
  const major = Number(/^v?(\d+)\./.exec(version)?.[1]);
  if (Number.isInteger(major) && major >= MIN_NODE_MAJOR) return null;
  return `cần Node.js ${MIN_NODE_MAJOR} LTS trở lên, đang chạy ${version} / needs Node.js ${MIN_NODE_MAJOR} LTS or later, this is ${version} (README "Two commands" says how to get it)`;
}
