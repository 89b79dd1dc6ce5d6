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
        progress.iter().any(|p| p.message.as_deref().is_some_and(
            |m| m.starts_with("queued behind other edits on this server; nothing sent yet")
        )),
        "{progress:?}"
    );
    session.stop().await;
}
