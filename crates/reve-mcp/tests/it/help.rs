//! Each command's `--help`, as the real binary prints it with no variable set: its own flags first, the shared
//! ones under their headings, and its examples right after its usage. Snapshots, so that a change to what a person
//! reads is seen in review (`cargo xtask snapshots`).

use std::collections::BTreeMap;

use crate::support::command;

async fn help(args: &[&str]) -> String {
    let output = command(&BTreeMap::new())
        .args(args)
        .output()
        .await
        .expect("reve-mcp runs");
    assert!(output.status.success(), "{args:?}: {output:?}");
    assert!(output.stderr.is_empty(), "{args:?}: {output:?}");
    String::from_utf8(output.stdout).expect("help is UTF-8")
}

#[tokio::test]
async fn each_commands_help_lists_its_own_flags_then_the_shared_ones_snapshot() {
    for (name, args) in [
        ("top", &["--help"][..]),
        ("serve", &["serve", "--help"]),
        ("edit", &["edit", "--help"]),
        ("create", &["create", "--help"]),
        ("remix", &["remix", "--help"]),
        ("jobs", &["jobs", "--help"]),
        ("usage", &["usage", "--help"]),
        ("view", &["view", "--help"]),
    ] {
        insta::assert_snapshot!(format!("help_{name}"), help(args).await);
    }
    // What the issue asked for, beyond the snapshots' say: `jobs` and `usage` list no server flag, `edit` none of
    // serve's own, and the examples come before the flags.
    for args in [
        &["jobs", "--help"][..],
        &["usage", "--help"],
        &["edit", "--help"],
    ] {
        let text = help(args).await;
        for flag in [
            "--http",
            "--max-wait-secs",
            "--preview-max-edge",
            "--allowed-dir",
        ] {
            assert!(!text.contains(flag), "{args:?} lists {flag}:\n{text}");
        }
    }
    let edit = help(&["edit", "--help"]).await;
    let examples = edit.find("Examples:").expect("edit's help has examples");
    assert!(examples < edit.find("Options:").unwrap(), "{edit}");
    assert!(
        edit.contains("\nThe API and the results:\n")
            && edit.contains("\nJob store (every command):\n")
    );
    let top = help(&["--help"]).await;
    assert!(
        !top.contains("--max-wait-secs"),
        "serve's flags are serve's help's to list:\n{top}"
    );
}

/// A bare `reve-mcp` takes serve's flags (a desktop configuration names no subcommand); before a subcommand they
/// are refused with where they go, and the store's flags are taken on either side.
#[tokio::test]
async fn flags_on_the_wrong_side_of_a_subcommand_say_where_they_go() {
    let refused = |args: &'static [&'static str]| async move {
        let output = command(&BTreeMap::new()).args(args).output().await.unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        String::from_utf8(output.stderr).unwrap()
    };
    let stderr = refused(&["--output-dir", "out", "edit", "a.png", "-p", "x"]).await;
    assert!(
        stderr.starts_with(
            "error: --output-dir goes after the subcommand: reve-mcp edit --output-dir"
        ),
        "{stderr}"
    );
    let stderr = refused(&["--max-wait-secs", "3", "jobs"]).await;
    assert!(
        stderr.starts_with("error: `reve-mcp jobs` does not take --max-wait-secs"),
        "{stderr}"
    );
    let state = tempfile::tempdir().unwrap();
    for args in [
        ["--state-dir", "DIR", "jobs"],
        ["jobs", "--state-dir", "DIR"],
    ] {
        let args = args.map(|arg| {
            if arg == "DIR" {
                state.path().to_str().unwrap()
            } else {
                arg
            }
        });
        let output = command(&BTreeMap::new()).args(args).output().await.unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(stdout.contains(state.path().to_str().unwrap()), "{stdout}");
    }
}
