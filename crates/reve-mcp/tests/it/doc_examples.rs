//! The examples of `docs/command-line.md` are what the commands print today: every ```` ```console ````
//! block there is run, command by command (`$ ...`), by `sh` in a home folder of its own against
//! the fake API, and what it printed (stdout and stderr, as a terminal shows them in turn) must be
//! the lines under the command. Before the comparison, both sides have the parts that differ on
//! every run made alike: the home folder is written `~`, and times, ids, dates and the fake's
//! address are replaced by placeholders. With `REVE_WRITE_DOC_EXAMPLES` set, the lines under each
//! command are written from what it printed instead (then read the diff).

use std::path::Path;

use reve_tests::fake::sample_png;

use crate::support::{World, binary, path_string};

const DOCUMENT: &str = "docs/command-line.md";

/// One command of a block, and the lines documented under it.
struct Example {
    command: String,
    documented: Vec<String>,
}

/// The ```` ```console ```` blocks of `text`: each block's byte range and its examples.
fn blocks(text: &str) -> Vec<(std::ops::Range<usize>, Vec<Example>)> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(start) = text[at..].find("```console\n").map(|start| at + start) {
        let body_start = start + "```console\n".len();
        let end = body_start + text[body_start..].find("```").expect("a closed block");
        let mut examples: Vec<Example> = Vec::new();
        for line in text[body_start..end].lines() {
            match line.strip_prefix("$ ") {
                Some(command) => examples.push(Example {
                    command: command.to_owned(),
                    documented: Vec::new(),
                }),
                None => examples
                    .last_mut()
                    .expect("a block starts with a command")
                    .documented
                    .push(line.to_owned()),
            }
        }
        found.push((body_start..end, examples));
        at = end + 3;
    }
    found
}

/// `line` with what differs between runs made alike.
fn neutral(line: &str, home: &str, fake: &str) -> String {
    let mut line = line
        .replace(home, "~")
        .replace(fake, "https://cdn.aimlapi.com");
    for (pattern, placeholder) in [
        (r"reve-\d{8}T\d{6}Z-[0-9a-f]{8}", "reve-TIME-ID"),
        (r"\b[0-9a-f]{32}\b", "JOB"),
        (r"rsid-[0-9a-f]+", "rsid-ID"),
        (r"/files/[0-9a-z-]+\.", "/files/FILE."),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "DATETIME"),
        (r"\b\d{4}-\d{2}-\d{2}\b", "DATE"),
        (r"the API took \d+\.\d s", "the API took N s"),
    ] {
        let pattern = regex::Regex::new(pattern).unwrap();
        line = pattern.replace_all(&line, placeholder).into_owned();
    }
    // A job's short id is the first 8 characters of its id: at the start of a `jobs` line.
    let short_id = regex::Regex::new(r"^[0-9a-f]{8}  ").unwrap();
    short_id.replace(&line, "SHORTID  ").into_owned()
}

#[tokio::test]
async fn the_command_lines_examples_are_what_it_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join(DOCUMENT);
    let text = std::fs::read_to_string(&path).unwrap();
    let world = World::new().await;
    let home = world.path("home");
    std::fs::create_dir_all(home.join("edited")).unwrap();
    for (name, size) in [
        ("cat.png", (320, 240)),
        ("dog.png", (300, 200)),
        ("fox.png", (200, 300)),
    ] {
        std::fs::write(home.join(name), sample_png(size.0, size.1)).unwrap();
    }
    std::fs::write(home.join("notes.txt"), "a shopping list\n").unwrap();
    let home_text = path_string(&home);
    let fake = world.fake.base_url().to_owned();
    let bin = binary().parent().unwrap().to_owned();

    let mut rewritten = text.clone();
    let mut failures = Vec::new();
    // From the last block back, so that the ranges before it stay where they were.
    let blocks = blocks(&text);
    assert!(!blocks.is_empty(), "{DOCUMENT} has no console block");
    let mut outputs = Vec::new();
    for (_, examples) in &blocks {
        let mut printed_block = Vec::new();
        for example in examples {
            // The fake answers on this test's runtime: the command is awaited, never blocked on.
            let output = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(format!("exec 2>&1; {}", example.command))
                .current_dir(&home)
                .env_clear()
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .env("HOME", &home)
                .env("AIML_API_KEY", world.fake.api_key())
                .env("AIML_API_BASE_URL", &fake)
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .unwrap();
            let printed: Vec<String> = String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(|line| neutral(line, &home_text, &fake))
                .collect();
            let documented: Vec<String> = (example.documented.iter())
                .map(|line| neutral(line, "/home/you", "https://cdn.aimlapi.com"))
                .collect();
            if printed != documented {
                failures.push(format!(
                    "$ {}\n  documented:\n    {}\n  printed:\n    {}",
                    example.command,
                    documented.join("\n    "),
                    printed.join("\n    ")
                ));
            }
            printed_block.push((example.command.clone(), output.stdout));
        }
        outputs.push(printed_block);
    }
    if std::env::var_os("REVE_WRITE_DOC_EXAMPLES").is_some() {
        for ((range, _), printed) in blocks.iter().zip(outputs).rev() {
            let mut body = String::new();
            for (command, stdout) in printed {
                body.push_str(&format!("$ {command}\n"));
                for line in String::from_utf8_lossy(&stdout).lines() {
                    body.push_str(
                        &line
                            .replace(&home_text, "~")
                            .replace(&fake, "https://cdn.aimlapi.com"),
                    );
                    body.push('\n');
                }
            }
            rewritten.replace_range(range.clone(), &body);
        }
        std::fs::write(&path, rewritten).unwrap();
        return;
    }
    assert!(
        failures.is_empty(),
        "{DOCUMENT}'s examples are not what the commands print (REVE_WRITE_DOC_EXAMPLES=1 writes them):\n{}",
        failures.join("\n")
    );
}
