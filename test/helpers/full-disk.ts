import { execFileSync } from 'node:child_process';
import fs, { closeSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A small real filesystem that tests can fill up: a tmpfs mounted for the test (root, as in CI).
 * Where mounting is not allowed, writes under the folder fail with an injected ENOSPC instead
 * (short writes included), and `injected` says so.
 */
export interface SmallDisk {
  readonly dir: string;
  readonly injected: boolean;
  /** Fills the filesystem to the last byte. */
  fill(): void;
  /** Frees what fill() took. */
  free(): void;
  close(): void;
}

export function mountSmallDisk(sizeBytes: number): SmallDisk {
  const dir = mkdtempSync(join(tmpdir(), 'ztgate-disk-'));
  let mounted = false;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], { stdio: 'pipe' });
    mounted = true;
  } catch (err) {
    process.stderr.write(`tmpfs could not be mounted (${(err as Error).message.split('\n')[0]}): writes under ${dir} fail with an injected ENOSPC instead\n`);
  }
  const filler = join(dir, 'filler');
  if (mounted) {
    return {
      dir,
      injected: false,
      fill() {
        const fd = openSync(filler, 'a');
        try {
          for (const size of [64 * 1024, 4096, 512, 1]) {
            const chunk = Buffer.alloc(size, 0x2e);
            for (;;) {
              try {
                if (writeSync(fd, chunk) < size) break;
              } catch {
                break;
              }
            }
          }
        } finally {
          closeSync(fd);
        }
      },
      free() {
        unlinkSync(filler);
      },
      close() {
        execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  // Injected: descriptors opened under `dir` get short writes, then ENOSPC, while full.
  const realOpen = fs.openSync;
  const realWrite = fs.writeSync;
  const ours = new Set<number>();
  let full = false;
  (fs as any).openSync = (path: fs.PathLike, ...rest: any[]) => {
    const fd = (realOpen as any)(path, ...rest);
    if (String(path).startsWith(dir)) ours.add(fd);
    return fd;
  };
  (fs as any).writeSync = (fd: number, buffer: any, ...rest: any[]) => {
    if (full && ours.has(fd)) {
      const data = typeof buffer === 'string' ? Buffer.from(buffer) : Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
      if (data.length > 16) return realWrite(fd, data.subarray(0, Math.floor(data.length / 2)));
      throw Object.assign(new Error('ENOSPC: no space left on device, write (injected)'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    }
    return (realWrite as any)(fd, buffer, ...rest);
  };
  syncBuiltinESMExports();
  return {
    dir,
    injected: true,
    fill: () => void (full = true),
    free: () => void (full = false),
    close() {
      (fs as any).openSync = realOpen;
      (fs as any).writeSync = realWrite;
      syncBuiltinESMExports();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
