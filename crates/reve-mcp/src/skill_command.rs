//! `reve-mcp skill`: the skill the server serves over the Skills extension, for agents that
//! read skills from disk instead: printed, or installed where they look.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::mcp::skill::{SKILL_MD, SKILL_NAME};

/// Where Claude Code looks for a person's own skills, under the home folder; other agents that
/// read `SKILL.md` folders take `--dir`.
const DEFAULT_SKILLS_DIR: &str = ".claude/skills";

/// Prints the skill's `SKILL.md`, exactly as the server serves it.
pub fn show() {
    print!("{SKILL_MD}");
}

/// Writes the skill as `DIR/reve-pictures/SKILL.md` (`dir`, else Claude Code's folder of
/// personal skills) and prints its path. A `SKILL.md` already there that differs (changed by
/// hand) is replaced only with `force`; the file is written whole or not at all.
pub fn install(dir: Option<&Path>, force: bool) -> anyhow::Result<PathBuf> {
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => dirs::home_dir()
            .context("no home folder is known: give the folder of skills with --dir")?
            .join(DEFAULT_SKILLS_DIR),
    };
    let folder = dir.join(SKILL_NAME);
    let path = folder.join("SKILL.md");
    match std::fs::read(&path) {
        Ok(there) if there == SKILL_MD.as_bytes() => {
            eprintln!("the skill is already installed, as this version has it");
            println!("{}", path.display());
            return Ok(path);
        }
        Ok(_) if !force => bail!(
            "{} is there and differs from this version's skill (changed by hand?); \
             --force replaces it",
            path.display()
        ),
        _ => {}
    }
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    let partial = folder.join(format!(".SKILL.md.{}.partial", std::process::id()));
    std::fs::write(&partial, SKILL_MD)
        .and_then(|()| std::fs::rename(&partial, &path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&partial);
        })
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "installed the {SKILL_NAME} skill; agents that read skills from this folder load it \
         in their next session"
    );
    println!("{}", path.display());
    Ok(path)
}
