#!/usr/bin/env node
// The `reve-mcp` command of the npm package: it finds the binary that npm installed from the
// package for this platform (one of `optionalDependencies`, chosen by its `os`, `cpu` and `libc`
// fields, so no install script runs) and hands over to it: the same arguments, environment,
// standard streams and exit status. Nothing is written to stdout here: over stdio it carries
// the MCP protocol only.
"use strict";

const { spawn } = require("node:child_process");
const path = require("node:path");

// The platforms a package is published for, as `process.platform-process.arch`.
const PLATFORMS = {
  "darwin-arm64": "@reve-mcp/darwin-arm64",
  "darwin-x64": "@reve-mcp/darwin-x64",
  "linux-arm64": "@reve-mcp/linux-arm64",
  "linux-x64": "@reve-mcp/linux-x64",
  "win32-x64": "@reve-mcp/win32-x64",
};

function fail(message) {
  process.stderr.write(`reve-mcp: ${message}\n`);
  process.exit(1);
}

// Linux packages carry binaries linked against glibc; musl systems (Alpine) need a build from source.
function isMusl() {
  if (process.platform !== "linux") return false;
  if (!process.report || !process.report.getReport) return false;
  // The network part of the report can take long to gather, and is not needed.
  process.report.excludeNetwork = true;
  const report = process.report.getReport();
  return Boolean(report && report.header && !report.header.glibcVersionRuntime);
}

const platform = `${process.platform}-${process.arch}`;
const fromSource = "build it from source instead: cargo install --locked reve-mcp";
const supported = Object.keys(PLATFORMS).join(", ");
const pkg = PLATFORMS[platform];
if (!pkg) {
  fail(`no prebuilt binary for ${platform}; packages exist for ${supported}. To use reve-mcp here, ${fromSource}`);
}
if (isMusl()) {
  fail(`the ${platform} binary needs glibc, and this system uses musl; ${fromSource}`);
}

let binary;
try {
  const manifest = require.resolve(`${pkg}/package.json`);
  binary = path.join(path.dirname(manifest), "bin", process.platform === "win32" ? "reve-mcp.exe" : "reve-mcp");
} catch {
  fail(
    `${pkg}, the package with the binary for ${platform}, is not installed. ` +
      `npm skips it when optional dependencies are turned off (--omit=optional, --no-optional): ` +
      `reinstall without that, or ${fromSource}. Packages exist for ${supported}.`,
  );
}

const child = spawn(binary, process.argv.slice(2), { stdio: "inherit", windowsHide: true });
child.on("error", (error) => fail(`could not start ${binary}: ${error.message}`));

// A host ends a stdio server with a signal: pass it on, and exit as the server did.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  });
}
child.on("exit", (code, signal) => {
  if (signal) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  } else {
    process.exit(code ?? 1);
  }
});
