//! Calls beyond `REVE_MAX_EDITS_IN_FLIGHT` wait their turn (and say so) instead of all holding
//! descriptors and memory at once; none fails for it, and none is sent before its turn.

use std::time::Duration;

use reve_tests::FakeApi;
use reve_tests::fake::{data_uri, sample_png};
use reve_tests::mcp::{TestClient, result_text};
use serde_json::json;

use crate::support::{World, start};

#[tokio::test]
async fn calls_past_the_limit_queue_and_all_succeed() {
    let fake = FakeApi::builder()
        .latency(Duration::from_millis(700))
        .start()
        .await;
    let world = World::with_fake(fake);
    let session = start(
        &world.env(&[("REVE_MAX_EDITS_IN_FLIGHT", "2")]),
        TestClient::default(),
    )
    .await;
    let input = data_uri("image/png", &sample_png(16, 16));
    let calls = (0..6).map(|_| session.edit_image(json!({ "prompt": "p", "image_url": input })));
    let results = futures::future::join_all(calls).await;
    for result in results {
        let result = result.unwrap();
        assert_ne!(result.is_error, Some(true), "{}", result_text(&result));
    }
    let counters = world.fake.counters();
    assert_eq!(counters.generation_attempts, 6);
    assert_eq!(counters.most_generations_in_flight, 2);
    // The ones that waited were told why, with nothing sent yet.
    let progress = session.observed.progress.lock().unwrap().clone();
    assert!(
        progress
            .iter()
            .any(|p| p.message.as_deref().is_some_and(|m| m
                .starts_with("queued behind other edits on this server (")
                && m.ends_with("; nothing sent yet)"))),
        "{progress:?}"
    );
    session.stop().await;
}

/// Under a hard open-file limit of 200 (as `ulimit -n 200` or systemd's `LimitNOFILE=200` set
/// it), the server takes fewer edits at once, says so, and every one of 150 simultaneous calls
/// still succeeds: none runs out of descriptors, before or after it was paid for.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_low_open_file_limit_lowers_the_edits_in_flight_and_no_call_fails() {
    use std::os::unix::fs::PermissionsExt as _;

    let fake = FakeApi::builder()
        .latency(Duration::from_millis(300))
        .start()
        .await;
    let world = World::with_fake(fake);
    let launcher = world.write(
        "reve-mcp-limited",
        format!(
            "#!/bin/sh\nulimit -n 200 || exit 1\nexec '{}' \"$@\"\n",
            crate::support::binary().display()
        )
        .as_bytes(),
    );
    std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).unwrap();
    let session = reve_tests::mcp::McpSession::start(
        &launcher,
        &world.env(&[("RUST_LOG", "info")]),
        TestClient::default(),
    )
    .await;
    let input = data_uri("image/png", &sample_png(16, 16));
    let calls = (0..150).map(|_| session.edit_image(json!({ "prompt": "p", "image_url": input })));
    for result in futures::future::join_all(calls).await {
        let result = result.unwrap();
        assert_ne!(result.is_error, Some(true), "{}", result_text(&result));
    }
    let counters = world.fake.counters();
    assert_eq!(counters.generation_attempts, 150);
    // At most (200 - 64 reserved) / 8 per edit.
    let most = counters.most_generations_in_flight;
    assert!((2..=17).contains(&most), "{most} at once");
    let log = session.stop().await;
    assert!(
        log.contains("allows fewer edits in flight than asked for"),
        "{log}"
    );
}
