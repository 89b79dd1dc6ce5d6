//! The skill this server serves (the Skills extension, SEP-2640): `SKILL.md` on getting good
//! pictures out of Reve through this server, for agents that load skills. The same bytes are
//! what `reve-mcp skill install` writes for agents that read skills from disk.

use rmcp::ErrorData as McpError;
use rmcp::model::{
    GetSkillResult, ListSkillsResult, ReadResourceResult, Resource, ResourceContents, Skill,
    SkillFrontmatter, SkillResource, SkillResources,
};

/// The skill's name: its folder, and the last segment of its URI but the file's.
pub const SKILL_NAME: &str = "reve-pictures";
/// Where the skill's `SKILL.md` is read (`resources/read`).
pub const SKILL_URI: &str = "skill://reve-pictures/SKILL.md";
/// The skill, as written in the crate's `skills/` folder.
pub const SKILL_MD: &str = include_str!("../../skills/reve-pictures/SKILL.md");
const MARKDOWN: &str = "text/markdown";

/// A field of the skill's front matter (`name:` or `description:`), one line each.
fn front_matter(field: &str) -> &'static str {
    SKILL_MD
        .strip_prefix("---\n")
        .and_then(|rest| rest.split_once("\n---\n"))
        .and_then(|(front, _)| {
            front
                .lines()
                .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        })
        .map_or("", str::trim)
}

/// The skill as `skills/list` and `skills/get` describe it: its front matter, and its one
/// file with the file's digest and size.
pub fn skill() -> Skill {
    Skill::new(
        SKILL_URI,
        SkillFrontmatter::new(front_matter("name"), front_matter("description")),
        SkillResources::Files(vec![SkillResource::from_bytes(
            SKILL_URI,
            SKILL_MD.as_bytes(),
        )]),
    )
}

/// `skills/list`: the one skill.
pub fn list() -> ListSkillsResult {
    ListSkillsResult::with_all_items(vec![skill()])
}

/// `skills/get`: the skill at `uri`, or `-32602` naming the one there is.
pub fn get(uri: &str) -> Result<GetSkillResult, McpError> {
    if uri == SKILL_URI {
        return Ok(GetSkillResult::new(skill()));
    }
    Err(McpError::invalid_params(
        format!("no skill {uri:?} is served here; this server's skill is {SKILL_URI}"),
        None,
    ))
}

/// The skill's file as `resources/list` lists it (on its first page, after the results).
pub fn resource() -> Resource {
    Resource::new(SKILL_URI, SKILL_NAME)
        .with_title("Pictures with Reve, through reve-mcp (a skill)")
        .with_description(front_matter("description"))
        .with_mime_type(MARKDOWN)
        .with_size(SKILL_MD.len() as u64)
}

/// `resources/read` of the skill's file, if `uri` is it.
pub fn read(uri: &str) -> Option<ReadResourceResult> {
    (uri == SKILL_URI).then(|| {
        ReadResourceResult::new(vec![
            ResourceContents::text(SKILL_MD, SKILL_URI).with_mime_type(MARKDOWN),
        ])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the extension requires of an entry (rmcp checks it as the specification does):
    /// the name is the folder's, the front matter is the file's, the digest is of its bytes.
    #[test]
    fn the_served_skill_is_valid_and_is_the_file() {
        let skill = skill();
        skill.validate().unwrap();
        assert_eq!(skill.name(), SKILL_NAME);
        assert_eq!(skill.frontmatter.name, SKILL_NAME);
        assert!(
            skill
                .frontmatter
                .description
                .starts_with("Make, edit and combine pictures"),
            "{:?}",
            skill.frontmatter.description
        );
        let SkillResources::Files(files) = &skill.resources else {
            panic!("a manifest of files");
        };
        assert_eq!(files.len(), 1);
        files[0].verify(SKILL_MD.as_bytes()).unwrap();
        assert!(get("skill://other/SKILL.md").is_err());
    }
}
