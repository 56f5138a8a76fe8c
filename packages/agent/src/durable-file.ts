import { promises as fs } from "node:fs";
import { dirname } from "node:path";

/**
 * Writes a file so that it survives a reset right after: temp file, fsync, rename, fsync of
 * the directory. A watchdog reset or sysrq reboot does not flush the page cache.
 */
export async function writeFileDurably(path: string, contents: string): Promise<void> {
  await fs.mkdir(dirname(path), { recursive: true });
  const temp = `${path}.tmp-${process.pid}`;
  const file = await fs.open(temp, "w", 0o600);
  try {
    await file.writeFile(contents);
    await file.sync();
  } finally {
    await file.close();
  }
  await fs.rename(temp, path);
  const dir = await fs.open(dirname(path), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
