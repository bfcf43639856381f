import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * node:util parseArgs, except that an option that takes a value always takes the next argument,
 * as getopt does: device ids are base64url thumbprints (RFC 7638) and one in 64 starts with "-",
 * which parseArgs alone refuses as "ambiguous" in `--device -Xk…`.
 */
export function parseCommandLine<T extends ParseArgsConfig & { args: string[] }>(config: T): ReturnType<typeof parseArgs<T>> {
  const takesValue = (arg: string) => arg.startsWith('--') && !arg.includes('=') && config.options?.[arg.slice(2)]?.type === 'string';
  const args: string[] = [];
  for (let i = 0; i < config.args.length; i++) {
    const arg = config.args[i]!;
    if (takesValue(arg) && i + 1 < config.args.length) args.push(`${arg}=${config.args[++i]}`);
    else args.push(arg);
  }
  return parseArgs<T>({ ...config, args });
}
