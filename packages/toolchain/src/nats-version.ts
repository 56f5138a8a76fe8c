import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { MIN_NATS_SERVER_VERSION } from "./catalog.js";

/** `a` ≥ `b` for dotted versions ("2.10.3", "v2.15.3"); pre-release suffixes are ignored. */
export function versionAtLeast(a: string, b: string): boolean {
  const parts = (v: string) =>
    v
      .replace(/^v/, "")
      .split(/[.-]/)
      .slice(0, 3)
      .map((p) => Number.parseInt(p, 10) || 0);
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
  return true;
}

/** The version a nats-server binary reports (`nats-server: v2.15.3`), or null. */
export function natsServerVersionOf(binary: string): string | null {
  const r = spawnSync(binary, ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  return r.status === 0 ? (r.stdout.match(/v?(\d+\.\d+\.\d+\S*)/)?.[1] ?? null) : null;
}

/** A nats-server on PATH at least as new as Fenceline needs, with its version; null when there is none. */
export function natsServerOnPath(path = process.env.PATH ?? ""): { binary: string; version: string } | null {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, "nats-server");
    try {
      accessSync(candidate, constants.X_OK);
    } catch {
      continue;
    }
    const version = natsServerVersionOf(candidate);
    if (version && versionAtLeast(version, MIN_NATS_SERVER_VERSION)) return { binary: candidate, version };
  }
  return null;
}
