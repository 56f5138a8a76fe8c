export { freePort, freePorts } from "@fenceline/toolchain";
