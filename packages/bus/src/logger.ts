import { pino, type Logger as PinoLogger } from "pino";

export type Logger = PinoLogger;

const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/**
 * A pino JSON logger writing to stderr (stdout stays free for command output). The level is
 * `options.level`, else `FENCELINE_LOG_LEVEL`, else "info".
 */
export function createLogger(name: string, options: { level?: string } = {}): Logger {
  const wanted = options.level ?? process.env.FENCELINE_LOG_LEVEL ?? "info";
  const level = LEVELS.includes(wanted) ? wanted : "info";
  // Synchronous writes so the last lines before a fatal exit are not lost.
  const log = pino({ name, level }, pino.destination({ dest: 2, sync: true }));
  if (level !== wanted) log.warn({ wanted, known: LEVELS }, `unknown log level "${wanted}", using "info"`);
  return log;
}
