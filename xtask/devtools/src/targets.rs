//! The systems a release is built for, and what each is called by the tools that package it:
//! cargo-dist (Rust's target triple, `dist-workspace.toml`), npm (Node's `process.platform` and
//! `process.arch`, the platform packages' names and their `os`/`cpu` fields) and the desktop
//! bundles (Rust's `std::env::consts`, in the file's name, and Node's platform, in the manifest's
//! `compatibility`). A test checks that `dist-workspace.toml`, the npm launcher and `server.json`
//! name the same five.

use anyhow::{Result, bail};

/// One system a release is built for.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// Rust's target triple, as cargo-dist builds it and names its archive.
    pub triple: &'static str,
    /// Node's `process.platform`: the npm package's `os`, and the bundle's platform.
    pub node_platform: &'static str,
    /// Node's `process.arch`: the npm package's `cpu`.
    pub node_arch: &'static str,
    /// `std::env::consts::OS` on it.
    pub os: &'static str,
    /// `std::env::consts::ARCH` on it.
    pub arch: &'static str,
    /// How a person names it.
    pub description: &'static str,
}

/// Every system a release is built for.
pub const TARGETS: [Target; 5] = [
    Target {
        triple: "aarch64-apple-darwin",
        node_platform: "darwin",
        node_arch: "arm64",
        os: "macos",
        arch: "aarch64",
        description: "macOS on Apple silicon",
    },
    Target {
        triple: "aarch64-unknown-linux-gnu",
        node_platform: "linux",
        node_arch: "arm64",
        os: "linux",
        arch: "aarch64",
        description: "Linux (glibc) on arm64",
    },
    Target {
        triple: "x86_64-apple-darwin",
        node_platform: "darwin",
        node_arch: "x64",
        os: "macos",
        arch: "x86_64",
        description: "macOS on Intel",
    },
    Target {
        triple: "x86_64-unknown-linux-gnu",
        node_platform: "linux",
        node_arch: "x64",
        os: "linux",
        arch: "x86_64",
        description: "Linux (glibc) on x86_64",
    },
    Target {
        triple: "x86_64-pc-windows-msvc",
        node_platform: "win32",
        node_arch: "x64",
        os: "windows",
        arch: "x86_64",
        description: "Windows on x86_64",
    },
];

impl Target {
    /// The system this program runs on, which must be one a release is built for.
    pub fn host() -> Result<&'static Target> {
        let (os, arch) = (std::env::consts::OS, std::env::consts::ARCH);
        match TARGETS
            .iter()
            .find(|target| target.os == os && target.arch == arch)
        {
            Some(target) => Ok(target),
            None => bail!("no release is built for {os} on {arch}"),
        }
    }

    /// The npm package that carries the binary for this system.
    pub fn npm_package(&self) -> String {
        format!("@reve-mcp/{}-{}", self.node_platform, self.node_arch)
    }

    /// The binary's file name on this system.
    pub fn executable(&self) -> &'static str {
        if self.os == "windows" {
            "reve-mcp.exe"
        } else {
            "reve-mcp"
        }
    }

    /// cargo-dist's archive of the binary for this system.
    pub fn dist_archive(&self) -> String {
        let extension = if self.os == "windows" {
            "zip"
        } else {
            "tar.xz"
        };
        format!("reve-mcp-{}.{extension}", self.triple)
    }

    /// The desktop bundle's file name for this system.
    pub fn bundle_file(&self, version: &str) -> String {
        format!("reve-{version}-{}-{}.mcpb", self.os, self.arch)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::Value;

    use super::TARGETS;

    fn read(path: &str) -> String {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path);
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
    }

    /// The triples of `dist-workspace.toml`'s `targets = [...]`.
    fn dist_targets() -> Vec<String> {
        let config = read("dist-workspace.toml");
        let list = config
            .split_once("\ntargets = [")
            .and_then(|(_, rest)| rest.split_once(']'))
            .expect("dist-workspace.toml has a targets list")
            .0;
        list.split(',')
            .map(|item| item.trim().trim_matches('"').to_owned())
            .filter(|item| !item.is_empty())
            .collect()
    }

    #[test]
    fn cargo_dist_builds_the_systems_that_are_packaged() {
        let mut triples: Vec<&str> = TARGETS.iter().map(|target| target.triple).collect();
        triples.sort_unstable();
        let mut built = dist_targets();
        built.sort_unstable();
        assert_eq!(built, triples);
    }

    #[test]
    fn the_release_builds_a_wheel_for_every_system() {
        let workflow = read(".github/workflows/build-packages.yml");
        let wheels: Vec<&str> = workflow
            .lines()
            .filter_map(|line| line.trim().strip_prefix("- target: "))
            .collect();
        let mut triples: Vec<&str> = TARGETS.iter().map(|target| target.triple).collect();
        let mut wheels = wheels;
        triples.sort_unstable();
        wheels.sort_unstable();
        assert_eq!(wheels, triples);
    }

    #[test]
    fn the_npm_launcher_knows_one_package_per_system_at_the_workspace_version() {
        let launcher: Value =
            serde_json::from_str(&read("packaging/npm/reve-mcp/package.json")).unwrap();
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(launcher["version"], version);
        let optional = launcher["optionalDependencies"].as_object().unwrap();
        let mut packages: Vec<String> = TARGETS.iter().map(|target| target.npm_package()).collect();
        packages.sort_unstable();
        assert_eq!(optional.keys().cloned().collect::<Vec<_>>(), packages);
        assert!(optional.values().all(|pinned| pinned == version));
        assert!(
            launcher.get("scripts").is_none(),
            "the launcher runs no install script"
        );

        let script = read("packaging/npm/reve-mcp/bin/reve-mcp.js");
        for target in &TARGETS {
            let line = format!(
                "\"{}-{}\": \"{}\",",
                target.node_platform,
                target.node_arch,
                target.npm_package()
            );
            assert!(script.contains(&line), "bin/reve-mcp.js lacks {line}");
        }
        assert_eq!(
            script.matches("\": \"@reve-mcp/").count(),
            TARGETS.len(),
            "bin/reve-mcp.js names a platform no release is built for"
        );
    }

    #[test]
    fn server_json_lists_one_bundle_per_system_on_the_release_page() {
        let entry: Value = serde_json::from_str(&read("server.json")).unwrap();
        let version = entry["version"].as_str().unwrap();
        let repository = entry["repository"]["url"].as_str().unwrap();
        let bundles: Vec<&str> = entry["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|package| package["registryType"] == "mcpb")
            .map(|package| package["identifier"].as_str().unwrap())
            .collect();
        let expected: Vec<String> = TARGETS
            .iter()
            .map(|target| {
                format!(
                    "{repository}/releases/download/v{version}/{}",
                    target.bundle_file(version)
                )
            })
            .collect();
        assert_eq!(bundles, expected);
    }
}
