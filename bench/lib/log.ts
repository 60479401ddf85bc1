// matrix-js-sdk and rtc-node log every sync, membership step and FFI callback to the
// console. The bench sends all console output to a log file and prints its own
// report on stdout.
import { createWriteStream, mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { format } from "node:util"

export const captureConsole = (logPath: string): void => {
  mkdirSync(dirname(logPath), { recursive: true })
  const out = createWriteStream(logPath, { flags: "w" })
  const write =
    (level: string) =>
    (...args: Array<unknown>) => {
      out.write(`${new Date().toISOString()} ${level} ${format(...args)}\n`)
    }
  console.log = write("log")
  console.info = write("info")
  console.debug = write("debug")
  console.trace = write("trace")
  console.warn = write("warn")
  console.error = write("error")
}

/** The bench's own output. */
export const say = (line = ""): void => {
  process.stdout.write(`${line}\n`)
}
