#!/usr/bin/env node
// The `matrixrtc` executable: parse argv, run, exit with the command's code.
//
// @livekit/rtc-node logs through its own pino instance straight to stdout (fd 1),
// at debug level unless NODE_ENV is "production". stdout is ours (JSON lines), so
// we set production before rtc-node is loaded (hence the dynamic import), whatever
// the caller's NODE_ENV: nothing else this program loads reads it.
process.env["NODE_ENV"] = "production"
const { main } = await import("./cli/Cli.ts")
const { runMain } = await import("./cli/Main.ts")

runMain(main(process.argv))
