import { promises as fs } from "node:fs";
import { writeFileDurably } from "./durable-file.js";

export const BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id";

/** The kernel's random id of the current boot: it changes on every reboot. */
export async function readBootId(path: string = BOOT_ID_PATH): Promise<string> {
  const id = (await fs.readFile(path, "utf8")).trim();
  if (!id) throw new Error(`${path} is empty`);
  return id;
}

/** Reads the last incarnation from `path` (none yet: 0), stores and returns the next one. */
export async function nextIncarnation(path: string): Promise<number> {
  let previous = 0;
  try {
    const text = (await fs.readFile(path, "utf8")).trim();
    previous = Number(text);
    if (!Number.isSafeInteger(previous) || previous < 0)
      throw new Error(`${path} does not hold an incarnation number: "${text.slice(0, 40)}"`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const next = previous + 1;
  await writeFileDurably(path, `${next}\n`);
  return next;
}
