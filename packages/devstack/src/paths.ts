// Every path the dev stack uses. All of them live in ignored folders of the repository:
// `.tools/` (installed binaries, template database; kept between runs) and
// `.stack/` (generated config, data, pid files, logs and the lock of the current run; never
// cached, so a killed run's lock cannot reach another machine).
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..")
export const toolsDir = join(repoRoot, ".tools")
export const stackDir = join(repoRoot, ".stack")

export const SYNAPSE_VERSION = "1.163.2"
export const LIVEKIT_VERSION = "1.13.5"
export const LIVEKIT_MODULE = "github.com/livekit/livekit-server/cmd/server"

export const paths = {
  synapseVenv: join(toolsDir, "synapse-venv"),
  synapsePython: join(toolsDir, "synapse-venv", "bin", "python"),
  synapseMarker: join(toolsDir, "synapse-venv", "devstack-installed.txt"),
  synapseConstraints: join(repoRoot, "packages", "devstack", "synapse-constraints.txt"),
  gobin: join(toolsDir, "gobin"),
  livekitBinary: join(toolsDir, "gobin", "server"),
  livekitMarker: join(toolsDir, "gobin", "devstack-livekit-version.txt"),
  goModCache: join(toolsDir, "go", "mod"),
  goBuildCache: join(toolsDir, "go", "cache"),
  templateDir: join(toolsDir, "synapse-template"),
  templateMarker: join(toolsDir, "synapse-template", "devstack-template.txt"),
  templateBuildDir: join(toolsDir, "synapse-template-build"),
  lockDir: join(stackDir, "devstack.lock"),
  stackJson: join(stackDir, "stack.json"),
  logsDir: join(stackDir, "logs"),
  synapseDir: join(stackDir, "synapse"),
  livekitConfig: join(stackDir, "livekit.yaml"),
  authServiceEntry: join(repoRoot, "packages", "devstack", "src", "auth-service", "main.ts")
} as const

export const pidFile = (service: string): string => join(stackDir, `${service}.pid`)
export const logFile = (service: string): string => join(stackDir, "logs", `${service}.log`)
