//! The skill: served over the Skills extension (SEP-2640) and installed as a file by
//! `reve-mcp skill install`, the same bytes both ways.

use reve_tests::mcp::TestClient;
use rmcp::model::{GetSkillRequestParams, ReadResourceRequestParams, ResourceContents};

use crate::support::{World, command, start};

const URI: &str = "skill://reve-pictures/SKILL.md";

async fn reve(world: &World, args: &[&str]) -> std::process::Output {
    command(&world.env(&[])).args(args).output().await.unwrap()
}

#[tokio::test]
async fn the_skill_served_is_the_file_installed() {
    let world = World::new().await;
    let session = start(&world.env(&[]), TestClient::default()).await;
    let peer = session.client.peer();
    let skills = peer.list_all_skills().await.unwrap();
    assert_eq!(skills.len(), 1, "{skills:?}");
    assert_eq!(skills[0].uri, URI);
    assert_eq!(skills[0].frontmatter.name, "reve-pictures");
    let got = peer
        .get_skill(GetSkillRequestParams::new(URI))
        .await
        .unwrap();
    assert_eq!(got.skill, skills[0]);
    let read = peer
        .read_resource(ReadResourceRequestParams::new(URI))
        .await
        .unwrap();
    let ResourceContents::TextResourceContents {
        text, mime_type, ..
    } = &read.contents[0]
    else {
        panic!("text: {read:?}");
    };
    assert_eq!(mime_type.as_deref(), Some("text/markdown"));
    assert!(
        text.starts_with("---\nname: reve-pictures\ndescription: "),
        "{text}"
    );
    // An unknown skill is -32602, as the extension says.
    let unknown = peer
        .get_skill(GetSkillRequestParams::new("skill://other/SKILL.md"))
        .await
        .unwrap_err();
    assert!(format!("{unknown:?}").contains("-32602"), "{unknown:?}");
    session.stop().await;

    let shown = reve(&world, &["skill", "show"]).await;
    assert!(shown.status.success(), "{shown:?}");
    assert_eq!(String::from_utf8(shown.stdout).unwrap(), *text);

    // Installed where asked, said where; again: left as it is.
    let skills_dir = world.path("agent-skills");
    let dir = skills_dir.to_str().unwrap();
    let installed = reve(&world, &["skill", "install", "--dir", dir]).await;
    assert!(installed.status.success(), "{installed:?}");
    let path = skills_dir.join("reve-pictures/SKILL.md");
    assert_eq!(
        String::from_utf8(installed.stdout).unwrap().trim(),
        path.to_str().unwrap()
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), *text);
    let again = reve(&world, &["skill", "install", "--dir", dir]).await;
    assert!(again.status.success(), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already installed"));

    // A copy changed by hand is kept unless --force.
    std::fs::write(&path, "my own notes\n").unwrap();
    let refused = reve(&world, &["skill", "install", "--dir", dir]).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--force"),
        "{refused:?}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "my own notes\n");
    let forced = reve(&world, &["skill", "install", "--dir", dir, "--force"]).await;
    assert!(forced.status.success(), "{forced:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), *text);
    let names: Vec<_> = std::fs::read_dir(skills_dir.join("reve-pictures"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["SKILL.md"], "nothing half-written left beside it");
}
