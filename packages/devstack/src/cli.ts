// `node packages/devstack/src/cli.ts up|down|status` (npm run stack:up / stack:down).
import { describeStack, down, status, up } from "./stack.ts"
import { formatMs, stderrLog } from "./util.ts"

const main = async (command: string | undefined): Promise<number> => {
  switch (command) {
    case "up": {
      const r = await up({ log: stderrLog, owner: "user" })
      process.stdout.write(`${describeStack(r.stack)}\n`)
      process.stdout.write(
        r.wasRunning
          ? `(already running; re-verified in ${formatMs(r.ms)})\n`
          : `(ready in ${formatMs(r.ms)}; started ${r.started.join(", ")}; stop with \`npm run stack:down\`)\n`
      )
      return 0
    }
    case "down": {
      await down({ log: stderrLog })
      process.stdout.write("MatrixRTC dev stack is down (no process, no port left).\n")
      return 0
    }
    case "status": {
      const s = status()
      for (const [name, pid] of Object.entries(s)) process.stdout.write(`${name.padEnd(8)} ${pid === undefined ? "stopped" : `running (pid ${pid})`}\n`)
      return 0
    }
    default:
      process.stderr.write("usage: node packages/devstack/src/cli.ts up|down|status\n")
      return 2
  }
}

main(process.argv[2]).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`[devstack] FAILED ${e instanceof Error ? e.message : String(e)}\n`)
    process.exit(1)
  }
)
