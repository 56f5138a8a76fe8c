import { execFile } from "node:child_process";
import { createHash, type Hash } from "node:crypto";
import { promises as fs } from "node:fs";

/** What makes up one service's configuration: files to read and commands whose output counts. */
export interface ServiceChecksumSpec {
  files?: readonly string[];
  /** Run with /bin/sh -c; stdout and the exit status count, stderr does not. */
  commands?: readonly string[];
}

export interface ChecksumOptions {
  services: Readonly<Record<string, ServiceChecksumSpec>>;
  /** Per command. Default 5s. */
  commandTimeoutMs?: number;
}

const MAX_COMMAND_OUTPUT = 16 * 1024 * 1024;

/**
 * sha256 (hex) per service. Deterministic: services, files and commands are taken in sorted
 * order (listing order in the config does not matter), and every part is length-framed so two
 * different inputs cannot hash alike. A missing or unreadable file and a failing or timed-out
 * command are hashed as distinct markers instead of failing the whole computation.
 */
export async function computeServiceChecksums(options: ChecksumOptions): Promise<Record<string, string>> {
  const timeoutMs = options.commandTimeoutMs ?? 5_000;
  const names = Object.keys(options.services).sort();
  const digests = await Promise.all(names.map((name) => checksumOfService(options.services[name] ?? {}, timeoutMs)));
  const result: Record<string, string> = {};
  names.forEach((name, i) => (result[name] = digests[i]!));
  return result;
}

/** The agent's `checksums` port over a fixed set of services. */
export function createChecksummer(options: ChecksumOptions): () => Promise<Record<string, string>> {
  return () => computeServiceChecksums(options);
}

async function checksumOfService(spec: ServiceChecksumSpec, timeoutMs: number): Promise<string> {
  const hash = createHash("sha256");
  for (const file of sortedUnique(spec.files)) {
    frame(hash, "file", file);
    try {
      frame(hash, "content", await fs.readFile(file));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "EUNKNOWN";
      frame(hash, code === "ENOENT" ? "missing" : "unreadable", code);
    }
  }
  for (const command of sortedUnique(spec.commands)) {
    frame(hash, "command", command);
    const run = await runCommand(command, timeoutMs);
    frame(hash, run.outcome, run.stdout);
  }
  return hash.digest("hex");
}

function frame(hash: Hash, tag: string, body: string | Buffer): void {
  const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  hash.update(`${tag}:${bytes.length}:`);
  hash.update(bytes);
}

function sortedUnique(items: readonly string[] | undefined): string[] {
  return [...new Set(items ?? [])].sort();
}

function runCommand(command: string, timeoutMs: number): Promise<{ outcome: string; stdout: Buffer }> {
  return new Promise((resolve) => {
    execFile(
      "/bin/sh",
      ["-c", command],
      { timeout: timeoutMs, maxBuffer: MAX_COMMAND_OUTPUT, encoding: "buffer", killSignal: "SIGKILL" },
      (err, stdout) => {
        if (!err) return resolve({ outcome: "exit-0", stdout });
        const failure = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string; signal?: string };
        if (failure.code === "ERR_CHILD_PROCESS_STDIO_MAXBUFFER") return resolve({ outcome: "oversize", stdout: Buffer.alloc(0) });
        if (failure.killed) return resolve({ outcome: "timeout", stdout: Buffer.alloc(0) });
        const outcome = typeof failure.code === "number" ? `exit-${failure.code}` : `failed-${failure.code ?? failure.signal ?? "unknown"}`;
        resolve({ outcome, stdout: stdout ?? Buffer.alloc(0) });
      },
    );
  });
}
