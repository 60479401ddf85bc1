#!/usr/bin/env node
// The `matrixrtc` executable: parse argv, run, exit with the command's code.
import { main } from "./cli/Cli.ts"
import { runMain } from "./cli/Main.ts"

runMain(main(process.argv))
