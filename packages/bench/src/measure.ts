import { readFileSync } from "node:fs";

/** How the benchmarks measure: process CPU and memory from /proc, and ratios. */

/** CPU time (user + system) of a process, in ms, from /proc (Linux); null elsewhere. */
export function processCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 of stat (utime, stime), counted from field 3 after the command name.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return null;
  }
}

/** Current and peak resident memory of a process, in MiB, from /proc (Linux); null elsewhere. */
export function processRssMb(pid: number): { rss: number; peak: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? NaN);
    return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
  } catch {
    return null;
  }
}

/** `a / b` rounded to three decimals: how every benchmark prints a ratio. */
export const ratio = (a: number, b: number): number => Math.round((a / b) * 1000) / 1000;
