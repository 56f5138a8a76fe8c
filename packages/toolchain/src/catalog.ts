/**
 * The Go-built tools Fenceline runs, each pinned to one version. A tool comes either from
 * `go install <package>@<version>` (modules without replace directives) or from a small Go
 * module of our own under `tools/<module>` (k8s.io/kubernetes and etcd's server module carry
 * replace directives that `go install` refuses).
 */
export type ToolSpec = {
  /** The name the cache directory and the messages use. */
  name: string;
  version: string;
  /** The binaries the build leaves in the tool's directory. */
  binaries: readonly string[];
  /** Extra `-ldflags` (version stamps). */
  ldflags?: string;
  /** Extra environment for the build (e.g. CGO_ENABLED=0 as upstream builds it). */
  env?: Readonly<Record<string, string>>;
} & ({ source: "install"; package: string } | { source: "module"; module: string; packages: readonly string[] });

const K8S_VERSION = "v1.37.2";
const componentVersion = "k8s.io/component-base/version";

export const TOOLS = [
  {
    name: "nats-server",
    version: "v2.15.3",
    source: "install",
    package: "github.com/nats-io/nats-server/v2",
    binaries: ["nats-server"],
  },
  {
    name: "natscli",
    version: "v0.5.0",
    source: "install",
    package: "github.com/nats-io/natscli/nats",
    binaries: ["nats"],
  },
  {
    name: "etcd",
    version: "v3.7.3",
    source: "module",
    module: "etcd",
    packages: ["."],
    binaries: ["etcd"],
    env: { CGO_ENABLED: "0" },
  },
  {
    name: "kubernetes",
    version: K8S_VERSION,
    source: "module",
    module: "kube",
    packages: [
      "k8s.io/kubernetes/cmd/kube-apiserver",
      "k8s.io/kubernetes/cmd/kube-controller-manager",
      "k8s.io/kubernetes/cmd/kube-scheduler",
    ],
    binaries: ["kube-apiserver", "kube-controller-manager", "kube-scheduler"],
    // Without the stamp the binaries report v0.0.0-master, and clients that check the server's
    // version (Fenceline's Automatic strategy among them) read nonsense.
    ldflags: [
      `-X ${componentVersion}.gitVersion=${K8S_VERSION}`,
      `-X ${componentVersion}.gitMajor=${K8S_VERSION.split(".")[0]!.slice(1)}`,
      `-X ${componentVersion}.gitMinor=${K8S_VERSION.split(".")[1]}`,
      `-X ${componentVersion}.gitTreeState=clean`,
    ].join(" "),
    env: { CGO_ENABLED: "0" },
  },
  {
    name: "helm",
    version: "v4.3.2",
    source: "install",
    package: "helm.sh/helm/v4/cmd/helm",
    binaries: ["helm"],
    ldflags: "-X helm.sh/helm/v4/internal/version.version=v4.3.2",
    env: { CGO_ENABLED: "0" },
  },
  {
    name: "promtool",
    version: "v0.316.0",
    source: "install",
    package: "github.com/prometheus/prometheus/cmd/promtool",
    binaries: ["promtool"],
  },
] as const satisfies readonly ToolSpec[];

export type ToolName = (typeof TOOLS)[number]["name"];
export type BinaryName = (typeof TOOLS)[number]["binaries"][number];

export function toolByName(name: string): ToolSpec | undefined {
  return TOOLS.find((t) => t.name === name);
}

export function toolOfBinary(binary: string): ToolSpec | undefined {
  return TOOLS.find((t) => (t.binaries as readonly string[]).includes(binary));
}

/**
 * The oldest nats-server Fenceline supports, from the features it uses: FL_EVENTS's subject
 * transform with `partition()` (2.10), the consumer reset that rewinds a partition (2.14) and
 * fast batch publishing of the engine's outputs (2.14). (`fenceline bench ownership` also uses
 * priority groups, 2.11.) Every process checks it when it connects (@fenceline/bus connectNats).
 */
export const MIN_NATS_SERVER_VERSION = "2.14.0";
