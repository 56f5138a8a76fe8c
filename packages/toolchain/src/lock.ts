import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * A directory lock, so that test workers and processes started at once build a tool once: the
 * first takes the lock, the others wait. A lock whose owner died is taken over.
 */
export async function withLock<T>(path: string, onWait: (ownerPid: number) => void, work: () => Promise<T>): Promise<T> {
  let announced = false;
  for (;;) {
    try {
      await mkdir(path);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const owner = Number((await readFile(join(path, "pid"), "utf8").catch(() => "")).trim());
    // No pid yet and an old lock: its owner died between taking the lock and writing its pid.
    const orphaned = owner === 0 && Date.now() - ((await stat(path).catch(() => null))?.mtimeMs ?? Date.now()) > 10_000;
    if ((owner > 0 && !alive(owner)) || orphaned) {
      await rm(path, { recursive: true, force: true });
      continue;
    }
    if (!announced && owner > 0) {
      onWait(owner);
      announced = true;
    }
    await sleep(500);
  }
  await writeFile(join(path, "pid"), String(process.pid));
  try {
    return await work();
  } finally {
    await rm(path, { recursive: true, force: true });
  }
}
