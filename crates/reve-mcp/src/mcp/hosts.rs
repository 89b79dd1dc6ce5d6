//! What the agent hosts we have run pass on to their model from a tool result, and the one thing
//! this server does differently because of it: whether a result carries `structuredContent`
//! (and the tools declare an `outputSchema`).
//!
//! A host may show its model the content blocks (the picture, the text, the link), the
//! structured JSON, or both. Every result is therefore written so that either alone carries
//! every fact and instruction the model needs (the saved path, the size, the job id and how to
//! collect a running edit); the picture, though, exists only as a content block. A host that
//! drops the content blocks whenever structured JSON is present would show its model no picture
//! at all, so such a host gets results without structured JSON. The table is checked against
//! the real hosts by `cargo xtask hosts`.

use rmcp::model::Implementation;

/// Whether results carry `structuredContent` and tools declare an `outputSchema`
/// (`--structured-content`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StructuredContent {
    /// Yes, except to a client known to drop a result's pictures and text beside structured
    /// JSON (see the table of known hosts) that does not render the viewer.
    #[default]
    Auto,
    /// Yes, to every client.
    Always,
    /// No, to any client: the pictures, the text and the link only. The viewer (an MCP App)
    /// reads the structured JSON, and shows only the state of the edit without it.
    Never,
}

/// One host's client as it names itself in `clientInfo.name`, and what it shows its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownHost {
    /// The host, as its users know it.
    pub host: &'static str,
    /// The `clientInfo.name` its MCP client sends, or its start followed by `-` and more (Qwen
    /// Code names its client after the server: `qwen-cli-mcp-client-reve`).
    pub client_name: &'static str,
    /// The host's release in which what it shows was seen.
    pub seen_in: &'static str,
    /// What its model sees of a tool result that has both content blocks and structured JSON.
    pub model_sees: ModelSees,
}

/// What of a tool result a host passes on to its model when the result carries both content
/// blocks and `structuredContent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSees {
    /// The content blocks (picture, text, link) and the structured JSON.
    Both,
    /// The pictures, with the structured JSON in place of the text.
    PicturesAndStructured,
    /// The content blocks only; the structured JSON never reaches the model.
    ContentOnly,
    /// The structured JSON only: the pictures and the text are dropped.
    StructuredOnly,
}

/// The hosts `cargo xtask hosts` runs, with what their models were seen to get.
pub const KNOWN_HOSTS: &[KnownHost] = &[
    KnownHost {
        host: "Claude Code",
        client_name: "claude-code",
        seen_in: "2.1.328",
        model_sees: ModelSees::PicturesAndStructured,
    },
    KnownHost {
        host: "Codex",
        client_name: "codex-mcp-client",
        seen_in: "0.169.0",
        model_sees: ModelSees::StructuredOnly,
    },
    KnownHost {
        host: "Gemini CLI",
        client_name: "gemini-cli-mcp-client",
        seen_in: "0.61.0",
        model_sees: ModelSees::ContentOnly,
    },
    KnownHost {
        host: "Qwen Code",
        client_name: "qwen-cli-mcp-client",
        seen_in: "0.24.4",
        model_sees: ModelSees::Both,
    },
    KnownHost {
        host: "opencode",
        client_name: "opencode",
        seen_in: "1.18.33",
        model_sees: ModelSees::ContentOnly,
    },
];

/// The known host whose client this is, by its `clientInfo.name`.
pub fn known_host(client: &Implementation) -> Option<&'static KnownHost> {
    KNOWN_HOSTS.iter().find(|host| {
        client
            .name
            .strip_prefix(host.client_name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    })
}

impl StructuredContent {
    /// Whether a client gets structured JSON: `renders_apps` when it declared the MCP Apps
    /// extension, whose viewer reads the JSON.
    pub fn for_client(self, client: Option<&Implementation>, renders_apps: bool) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => {
                renders_apps
                    || !client
                        .and_then(known_host)
                        .is_some_and(|host| host.model_sees == ModelSees::StructuredOnly)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str) -> Implementation {
        Implementation::new(name, "1.0.0")
    }

    #[test]
    fn only_a_host_that_drops_pictures_beside_structured_json_goes_without_it() {
        for host in KNOWN_HOSTS {
            let sent = StructuredContent::Auto.for_client(Some(&client(host.client_name)), false);
            assert_eq!(
                sent,
                host.model_sees != ModelSees::StructuredOnly,
                "{}",
                host.host
            );
        }
        let codex = client("codex-mcp-client");
        assert!(!StructuredContent::Auto.for_client(Some(&codex), false));
        // The viewer needs the JSON, and a host that renders it shows its own picture.
        assert!(StructuredContent::Auto.for_client(Some(&codex), true));
        assert!(StructuredContent::Always.for_client(Some(&codex), false));
        // Unknown clients, and clients that name themselves nothing, get the JSON.
        assert!(StructuredContent::Auto.for_client(Some(&client("some-client")), false));
        // A name is matched whole, or as the start of a longer name after a `-`.
        let qwen = known_host(&client("qwen-cli-mcp-client-reve")).unwrap();
        assert_eq!(qwen.host, "Qwen Code");
        assert!(known_host(&client("codex-mcp-clientele")).is_none());
        assert!(StructuredContent::Auto.for_client(None, false));
        assert!(!StructuredContent::Never.for_client(None, true));
    }

    #[test]
    fn every_known_host_is_listed_once_with_the_release_it_was_seen_in() {
        let mut names: Vec<&str> = KNOWN_HOSTS.iter().map(|host| host.client_name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KNOWN_HOSTS.len());
        for host in KNOWN_HOSTS {
            assert!(
                host.seen_in.split('.').count() == 3
                    && host
                        .seen_in
                        .split('.')
                        .all(|part| part.parse::<u32>().is_ok()),
                "{}: {:?} is not a release",
                host.host,
                host.seen_in
            );
        }
    }
}
