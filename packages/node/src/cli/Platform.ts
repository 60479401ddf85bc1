/**
 * The three platform services @effect/cli asks for (FileSystem, Path, Terminal),
 * implemented on plain `node:` modules.
 *
 * Why not @effect/platform-node: it would add its required peers (and their native
 * and HTTP stacks) to every install of this package, for a CLI that only needs
 * `exists`/`stat` for `--play FILE`, `Path` for the file prompt, and a terminal to
 * print help and to run `--wizard`.
 */
import { FileSystem, Path, Terminal } from "@effect/platform"
import { SystemError } from "@effect/platform/Error"
import { Effect, Exit, Layer, Mailbox, Option } from "effect"
import * as fs from "node:fs/promises"
import * as readline from "node:readline"

const systemError = (method: string, path: string, cause: unknown) =>
  new SystemError({
    module: "FileSystem",
    method,
    pathOrDescriptor: path,
    reason: (cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT" ? "NotFound" : "Unknown",
    cause
  })

const fileType = (s: import("node:fs").Stats): FileSystem.File.Type =>
  s.isFile() ? "File" : s.isDirectory() ? "Directory" : s.isSymbolicLink() ? "SymbolicLink" : "Unknown"

/** Read-only file access: what `Options.file` validation and the file prompt use. Everything else fails as "not found". */
export const fileSystemLayer: Layer.Layer<FileSystem.FileSystem> = FileSystem.layerNoop({
  exists: (path) => Effect.promise(() => fs.access(path).then(() => true, () => false)),
  stat: (path) =>
    Effect.tryPromise({ try: () => fs.stat(path), catch: (e) => systemError("stat", path, e) }).pipe(
      Effect.map((s) => ({
        type: fileType(s),
        mtime: Option.some(s.mtime),
        atime: Option.some(s.atime),
        birthtime: Option.some(s.birthtime),
        dev: s.dev,
        ino: Option.some(s.ino),
        mode: s.mode,
        nlink: Option.some(s.nlink),
        uid: Option.some(s.uid),
        gid: Option.some(s.gid),
        rdev: Option.some(s.rdev),
        size: FileSystem.Size(s.size),
        blksize: Option.some(FileSystem.Size(s.blksize)),
        blocks: Option.some(s.blocks)
      }))
    ),
  readFile: (path) => Effect.tryPromise({ try: () => fs.readFile(path), catch: (e) => systemError("readFile", path, e) }),
  readFileString: (path, encoding) =>
    Effect.tryPromise({
      try: () => fs.readFile(path, { encoding: (encoding ?? "utf8") as BufferEncoding }),
      catch: (e) => systemError("readFileString", path, e)
    }),
  readDirectory: (path) => Effect.tryPromise({ try: () => fs.readdir(path), catch: (e) => systemError("readDirectory", path, e) })
})

/**
 * A terminal on process.stdin/stdout. `readInput` switches stdin to raw mode for
 * the scope (keypress prompts); `readLine` reads one line.
 */
export const terminalLayer: Layer.Layer<Terminal.Terminal> = Layer.succeed(
  Terminal.Terminal,
  Terminal.Terminal.of({
    columns: Effect.sync(() => process.stdout.columns ?? 80),
    rows: Effect.sync(() => process.stdout.rows ?? 24),
    isTTY: Effect.sync(() => process.stdout.isTTY === true),
    display: (text) => Effect.sync(() => void process.stdout.write(text)),
    readLine: Effect.async<string, Terminal.QuitException>((resume) => {
      const rl = readline.createInterface({ input: process.stdin, terminal: false })
      const onLine = (line: string) => resume(Effect.succeed(line))
      const onClose = () => resume(Effect.fail(new Terminal.QuitException()))
      rl.once("line", onLine)
      rl.once("close", onClose)
      return Effect.sync(() => {
        rl.off("close", onClose)
        rl.close()
      })
    }),
    readInput: Effect.gen(function*() {
      const mailbox = yield* Mailbox.make<Terminal.UserInput>()
      const stdin = process.stdin
      readline.emitKeypressEvents(stdin)
      const raw = stdin.isTTY === true
      const onKey = (input: string | undefined, key: { name?: string; ctrl?: boolean; meta?: boolean; shift?: boolean } | undefined) => {
        const k = { name: key?.name ?? "", ctrl: key?.ctrl === true, meta: key?.meta === true, shift: key?.shift === true }
        // Ctrl-C inside a prompt quits the prompt rather than the process.
        if (k.ctrl && k.name === "c") mailbox.unsafeDone(Exit.void)
        else mailbox.unsafeOffer({ input: Option.fromNullable(input), key: k })
      }
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          if (raw) stdin.setRawMode(true)
          stdin.on("keypress", onKey)
          stdin.resume()
        }),
        () =>
          Effect.sync(() => {
            stdin.off("keypress", onKey)
            if (raw) stdin.setRawMode(false)
            stdin.pause()
          })
      )
      return mailbox as Mailbox.ReadonlyMailbox<Terminal.UserInput>
    })
  })
)

/** Everything `Command.run` needs from the platform. */
export const layer: Layer.Layer<FileSystem.FileSystem | Path.Path | Terminal.Terminal> = Layer.mergeAll(
  fileSystemLayer,
  Path.layer,
  terminalLayer
)
