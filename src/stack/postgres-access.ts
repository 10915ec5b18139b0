// Running as root, PostgreSQL refuses to start as root, so it runs as the `postgres` account.
// That account must be able to walk to the binaries and to the data folder. A clone in root's
// home or a data folder under `mktemp -d` sits below a 0700 folder it cannot enter; rather
// than loosen the user's folders, mldeploy then places what it cannot reach under
// ROOT_PLACE, a root-owned folder every account may traverse.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const ROOT_PLACE = '/var/lib/mldeploy';
const ACCOUNT = 'postgres';

export interface Account {
  uid: number;
  gid: number;
}

/** The `postgres` account, created (as a system account) when the machine has none. */
export async function postgresAccount(): Promise<Account> {
  const lookup = async () => ({
    uid: Number((await run('id', ['-u', ACCOUNT])).stdout.trim()),
    gid: Number((await run('id', ['-g', ACCOUNT])).stdout.trim()),
  });
  try {
    return await lookup();
  } catch {
    try {
      await run('useradd', ['--system', '--user-group', '--no-create-home', ACCOUNT]);
    } catch (err) {
      throw new Error(
        `running as root, PostgreSQL needs a '${ACCOUNT}' account, and creating one failed (${(err as Error).message.split('\n')[0]}); create it, or set DATABASE_URL`,
      );
    }
    return lookup();
  }
}

/** Whether `account` may enter `dir` and every folder above it (permission bits; ACLs are not read). */
export async function canTraverse(dir: string, account: Account): Promise<boolean> {
  let current = path.resolve(dir);
  for (;;) {
    const stat = await fs.stat(current).catch(() => null);
    if (stat) {
      const bit = stat.uid === account.uid ? 0o100 : stat.gid === account.gid ? 0o010 : 0o001;
      if ((stat.mode & bit) === 0) return false;
    }
    const parent = path.dirname(current);
    if (parent === current) return true;
    current = parent;
  }
}

/** A folder under ROOT_PLACE that every account may traverse, created when missing. */
async function rootPlace(...parts: string[]): Promise<string> {
  let dir = ROOT_PLACE;
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  await fs.chmod(dir, 0o755);
  for (const part of parts) {
    dir = path.join(dir, part);
    await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  }
  return dir;
}

/**
 * The PostgreSQL install folder (`bin`, `lib`, `share`) as `account` can reach it: where npm put
 * it, or a hard-linked twin under ROOT_PLACE (copied across file systems). PostgreSQL finds its
 * libraries and share folder next to its binary, so the whole tree is mirrored, never a symlink.
 */
export async function reachableInstall(installDir: string, version: string, account: Account): Promise<string> {
  if (await canTraverse(path.join(installDir, 'bin'), account)) return installDir;
  const target = path.join(await rootPlace(), `postgres-${version}`);
  if (await fs.stat(path.join(target, 'bin', 'postgres')).catch(() => null)) return target;
  // Built aside and renamed, so a concurrent start never sees half a tree.
  const building = `${target}.${process.pid}`;
  await fs.rm(building, { recursive: true, force: true });
  await mirror(installDir, building);
  await fs.rename(building, target).catch(async (err: NodeJS.ErrnoException) => {
    await fs.rm(building, { recursive: true, force: true });
    if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
  });
  return target;
}

async function mirror(from: string, to: string): Promise<void> {
  await fs.mkdir(to, { mode: 0o755 });
  for (const entry of await fs.readdir(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    const copy = path.join(to, entry.name);
    if (entry.isDirectory()) await mirror(source, copy);
    else if (entry.isSymbolicLink()) await fs.symlink(await fs.readlink(source), copy);
    else await fs.link(source, copy).catch(() => fs.copyFile(source, copy));
  }
}

/**
 * The cluster folder for a data folder: `<data dir>/postgres` when `account` can reach it,
 * otherwise one folder per data folder under ROOT_PLACE (named in `<data dir>/postgres.location`).
 */
export async function reachableDatabaseDir(dataDir: string, account: Account): Promise<string> {
  const inPlace = path.join(dataDir, 'postgres');
  if (await canTraverse(dataDir, account)) return inPlace;
  const key = createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 16);
  const elsewhere = path.join(await rootPlace('clusters', key), 'postgres');
  await fs.writeFile(path.join(dataDir, 'postgres.location'), `${elsewhere}\n`);
  return elsewhere;
}
