import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** What a BMC controls: the power of one (simulated) machine. */
export type PoweredMachine = {
  /** "on" while the machine is up or hung, "off" once it is powered down. */
  power(): "on" | "off";
  setPower(on: boolean): Promise<void>;
};

export type IpmiSimBmcOptions = {
  /** The machine's name: the BMC's name in ipmi_sim and in its files. */
  name: string;
  machine: PoweredMachine;
  host?: string;
  /** UDP port (default: a free loopback port). */
  port?: number;
  user?: string;
  /** Default: 16 random hex characters. */
  password?: string;
  /** Where its configuration, state and password file go (default: a new temporary directory, removed on stop). */
  dir?: string;
  /** How often the machine's power is mirrored and power requests are applied (default 25 ms). */
  pollMs?: number;
};

export type IpmiSimBmc = {
  name: string;
  host: string;
  port: number;
  user: string;
  /** The password, in a file readable only by its owner (what `fenceline up` is given). */
  passwordFile: string;
  /** The fence_ipmilan parameters that reach this BMC (the password goes separately). */
  fenceParams: Record<string, string>;
  /** Power changes the BMC applied, in order ("off"/"on" with the time). */
  readonly powerChanges: { at: number; to: "on" | "off" }[];
  faults: {
    /** The BMC stops answering (its process is gone; the machine's power is untouched) until healed. */
    unreachable(on: boolean): Promise<void>;
    /** Power changes take effect this long after the BMC accepted them (0: at once). */
    slow(ms: number): void;
    /** The BMC refuses to power the machine on (an IPMI error to the caller). */
    failPowerOn(on: boolean): Promise<void>;
    /**
     * An administrator changed the BMC's password (`passwordFile` keeps the old one, as a fence
     * devices file not yet updated would): logins with it are refused until it is set back.
     */
    rotatePassword(newPassword: string | null): Promise<void>;
  };
  stop(): Promise<void>;
};

/** A loopback UDP port nobody uses (bound, then released). */
export function freeUdpPort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    socket.once("error", reject);
    socket.bind(0, host, () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

export function ipmiSimAvailable(): boolean {
  return ["ipmi_sim", "ipmitool"].every((tool) => spawnSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" }).status === 0);
}

/**
 * ipmi_sim calls this for chassis control: `chassis get power` prints `power:1|0` (the machine's
 * power, mirrored into a file by the harness), `chassis set power "0|1"` queues a request the
 * harness applies to the machine. A non-zero exit becomes an IPMI error to the caller.
 */
const CHASSIS_SCRIPT = `#!/bin/sh
dir="$(dirname "$0")"
op="$1"; what="$2"; value="$3"
case "$op" in
  get)
    [ "$what" = power ] || exit 1
    printf 'power:%s\\n' "$(cat "$dir/power" 2>/dev/null || echo 0)"
    ;;
  set)
    case "$what" in
      power) ;;
      reset) value=cycle ;;
      *) exit 0 ;;
    esac
    if [ "$value" = 1 ] && [ -f "$dir/fail-power-on" ]; then echo "power-on refused (simulated fault)" >&2; exit 1; fi
    echo "$value" >> "$dir/requests"
    ;;
  *) exit 1 ;;
esac
exit 0
`;

function lanConf(o: { name: string; host: string; port: number; user: string; password: string; chassis: string }): string {
  return [
    `name "${o.name}"`,
    "set_working_mc 0x20",
    "  startlan 1",
    `    addr ${o.host} ${o.port}`,
    "    priv_limit admin",
    "    allowed_auths_callback none md2 md5 straight",
    "    allowed_auths_user none md2 md5 straight",
    "    allowed_auths_operator none md2 md5 straight",
    "    allowed_auths_admin none md2 md5 straight",
    `    guid ${randomBytes(16).toString("hex")}`,
    "  endlan",
    `  chassis_control "${o.chassis}"`,
    `  user 2 true "${o.user}" "${o.password}" admin 10 none md2 md5 straight`,
    "",
  ].join("\n");
}

const EMULATION = ["mc_setbmc 0x20", "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02", "mc_enable 0x20", ""].join("\n");

/**
 * Runs ipmitool against a BMC (lanplus, cipher suite 3), the password in IPMI_PASSWORD (`-E`) rather
 * than in the arguments. Resolves with its exit status and output.
 */
export function ipmitool(
  bmc: { host: string; port: number; user: string; password: string },
  command: string[],
  timeoutMs = 5_000,
): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const args = [
      "-I",
      "lanplus",
      "-C",
      "3",
      "-N",
      "1",
      "-R",
      "1",
      "-H",
      bmc.host,
      "-p",
      String(bmc.port),
      "-U",
      bmc.user,
      "-E",
      ...command,
    ];
    const proc = spawn("ipmitool", args, { env: { ...process.env, IPMI_PASSWORD: bmc.password }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    proc.stdout.on("data", (c: Buffer) => (output += c.toString()));
    proc.stderr.on("data", (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
    proc.on("error", (err) => {
      clearTimeout(timer);
      resolve({ status: null, output: err.message });
    });
    proc.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    });
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * OpenIPMI's `ipmi_sim` as a simulated machine's BMC: IPMI over LAN (lanplus, user and password)
 * on a loopback UDP port, whose chassis power control really powers the machine off and on.
 * `fence_ipmilan` and `ipmitool -I lanplus -C 3` reach it. ipmi_sim offers cipher suites up to 3
 * (ipmitool 1.8.19 asks for 17 unless told otherwise), so the fence parameters name cipher 3.
 */
export async function startIpmiSimBmc(options: IpmiSimBmcOptions): Promise<IpmiSimBmc> {
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? (await freeUdpPort(host));
  const user = options.user ?? "admin";
  const password = options.password ?? randomBytes(8).toString("hex");
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), `fl-bmc-${options.name}-`)));
  const pollMs = options.pollMs ?? 25;
  if (/["\s]/.test(user) || /["\s]/.test(password)) throw new Error("ipmi_sim user and password must not contain quotes or spaces");
  await mkdir(join(dir, "state"), { recursive: true });
  const chassis = join(dir, "chassis");
  await writeFile(chassis, CHASSIS_SCRIPT);
  await chmod(chassis, 0o755);
  const writeLanConf = (pw: string) =>
    writeFile(join(dir, "lan.conf"), lanConf({ name: options.name, host, port, user, password: pw, chassis }));
  await writeLanConf(password);
  await writeFile(join(dir, "sim.emu"), EMULATION);
  const passwordFile = join(dir, "password");
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  await writeFile(join(dir, "requests"), "");

  const powerChanges: { at: number; to: "on" | "off" }[] = [];
  let mirrored: "on" | "off" | undefined;
  const mirror = async () => {
    const now = options.machine.power();
    if (now !== mirrored) {
      mirrored = now;
      await writeFile(join(dir, "power"), now === "on" ? "1" : "0");
    }
  };
  await mirror();

  let slowMs = 0;
  let applied = 0;
  let running = true;
  const pending: Promise<void>[] = [];
  const apply = async (request: string) => {
    if (slowMs > 0) await sleep(slowMs);
    if (!running) return;
    const steps: boolean[] = request === "cycle" ? [false, true] : [request === "1"];
    for (const on of steps) {
      await options.machine.setPower(on);
      powerChanges.push({ at: Date.now(), to: on ? "on" : "off" });
      await mirror();
    }
  };
  const loop = (async () => {
    while (running) {
      const lines = (await readFile(join(dir, "requests"), "utf8")).split("\n").filter(Boolean);
      for (const request of lines.slice(applied)) pending.push(apply(request));
      applied = lines.length;
      await mirror();
      await sleep(pollMs);
    }
  })();

  let child: ChildProcess | undefined;
  let log = "";
  /** The password the BMC accepts now (rotatePassword changes it). */
  let current = password;
  const start = async () => {
    log = "";
    const proc = spawn("ipmi_sim", ["-c", join(dir, "lan.conf"), "-f", join(dir, "sim.emu"), "-s", join(dir, "state"), "-n"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    proc.stdout.on("data", (c: Buffer) => (log += c.toString()));
    proc.stderr.on("data", (c: Buffer) => (log += c.toString()));
    child = proc;
    await waitAnswering(proc);
  };
  const waitAnswering = async (proc: ChildProcess) => {
    const end = Date.now() + 10_000;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null)
        throw new Error(`ipmi_sim for ${options.name} exited (${proc.exitCode ?? proc.signalCode}): ${log.trim()}`);
      const probe = await ipmitool({ host, port, user, password: current }, ["chassis", "power", "status"]);
      if (probe.status === 0 && /Chassis Power is/.test(probe.output)) return;
      if (Date.now() > end)
        throw new Error(`ipmi_sim for ${options.name} on ${host}:${port} does not answer: ${probe.output.trim()} ${log.trim()}`);
      await sleep(100);
    }
  };
  const kill = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill("SIGKILL");
    await exited;
  };

  try {
    await start();
  } catch (err) {
    running = false;
    await loop;
    await kill();
    if (ownDir) await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    name: options.name,
    host,
    port,
    user,
    passwordFile,
    fenceParams: { ip: host, ipport: String(port), username: user, lanplus: "1", cipher: "3" },
    powerChanges,
    faults: {
      async unreachable(on) {
        if (on) await kill();
        else if (!child) await start();
      },
      slow(ms) {
        slowMs = ms;
      },
      async failPowerOn(on) {
        if (on) await writeFile(join(dir, "fail-power-on"), "1");
        else await rm(join(dir, "fail-power-on"), { force: true });
      },
      async rotatePassword(newPassword) {
        const pw = newPassword ?? password;
        if (/["\s]/.test(pw)) throw new Error("ipmi_sim passwords must not contain quotes or spaces");
        // ipmi_sim reads its users at start (its state directory would keep users changed over IPMI).
        const wasUp = child !== undefined;
        await kill();
        current = pw;
        await writeLanConf(pw);
        await rm(join(dir, "state"), { recursive: true, force: true });
        await mkdir(join(dir, "state"), { recursive: true });
        if (wasUp) await start();
      },
    },
    async stop() {
      running = false;
      await loop;
      await Promise.allSettled(pending);
      await kill();
      if (ownDir) await rm(dir, { recursive: true, force: true });
    },
  };
}
