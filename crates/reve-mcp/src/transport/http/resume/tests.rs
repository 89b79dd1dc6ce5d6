use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use rmcp::model::ServerJsonRpcMessage;
use serde_json::{Value, json};

use super::{EventStore as _, Limits, ResumableEvents, ServerSseMessage, SharedEvents};

fn limits() -> Limits {
    Limits {
        after_answer: Duration::from_secs(300),
        while_silent: Duration::from_secs(1800),
        bytes: 1 << 20,
        events_per_stream: 100,
        sweep_every: Duration::ZERO,
    }
}

fn events(limits: Limits) -> SharedEvents {
    SharedEvents(Arc::new(ResumableEvents::with_limits(limits)))
}

fn message(value: Value) -> ServerSseMessage {
    let message: ServerJsonRpcMessage = serde_json::from_value(value).unwrap();
    ServerSseMessage::from_message(message)
}

fn progress(step: u32) -> ServerSseMessage {
    message(json!({
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": { "progressToken": "t", "progress": step }
    }))
}

fn answer(id: u32, padding: usize) -> ServerSseMessage {
    message(json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": { "content": [{ "type": "text", "text": "x".repeat(padding) }] }
    }))
}

fn priming() -> ServerSseMessage {
    ServerSseMessage::priming("", Duration::from_secs(3))
}

/// The progress steps, and answer ids, of a replay's events.
async fn replayed(events: &SharedEvents, after: &str) -> Vec<Value> {
    let stream = events.replay_events_after(after).await.unwrap();
    let collected: Vec<ServerSseMessage> =
        tokio::time::timeout(Duration::from_secs(5), stream.collect())
            .await
            .expect("a replay of an answered stream ends");
    collected.iter().map(summary).collect()
}

fn summary(event: &ServerSseMessage) -> Value {
    let message = serde_json::to_value(event.message.as_deref().unwrap()).unwrap();
    match message.get("id") {
        Some(id) => json!({ "answer": id }),
        // Progress is a float on the wire; the tests count in whole steps.
        None => json!(message["params"]["progress"].as_f64().unwrap() as u32),
    }
}

#[tokio::test]
async fn a_replay_sends_what_came_after_the_id_then_follows_the_stream_to_its_answer() {
    let events = events(limits());
    let primed = events.store_event("call", &priming()).await.unwrap();
    let first = events.store_event("call", &progress(1)).await.unwrap();
    events.store_event("call", &progress(2)).await.unwrap();
    events.store_event("other", &progress(9)).await.unwrap();
    assert_ne!(primed, first);

    // Reconnected while the call still runs: what was missed, then what comes.
    let mut stream = events.replay_events_after(&first).await.unwrap();
    let missed = stream.next().await.unwrap();
    assert_eq!(summary(&missed), json!(2));
    let writer = events.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.store_event("call", &progress(3)).await.unwrap();
        writer.store_event("call", &answer(7, 10)).await.unwrap();
        writer.store_event("call", &progress(4)).await.unwrap();
    });
    let rest: Vec<Value> = tokio::time::timeout(Duration::from_secs(5), stream.collect::<Vec<_>>())
        .await
        .expect("the replay ends with the answer")
        .iter()
        .map(summary)
        .collect();
    assert_eq!(rest, [json!(3), json!({ "answer": 7 })]);

    // Reconnected after the answer: everything after the priming event, each with its id.
    assert_eq!(
        replayed(&events, &primed).await,
        [json!(1), json!(2), json!(3), json!({ "answer": 7 })]
    );
    let stream = events.replay_events_after(&first).await.unwrap();
    let ids: Vec<String> = stream
        .take(2)
        .map(|event| event.event_id.unwrap())
        .collect()
        .await;
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&first), "{ids:?}");
}

#[tokio::test]
async fn ids_made_up_or_from_another_process_name_nothing() {
    let here = events(limits());
    let elsewhere = events(limits());
    let id = here.store_event("call", &progress(1)).await.unwrap();
    let (token, index) = id.split_once('-').unwrap();
    assert_eq!((token.len(), index), (32, "0"), "{id}");
    // A token one off: tokens are random, so no stream's is near another's.
    let neighbour = format!("{:032x}-0", u128::from_str_radix(token, 16).unwrap() ^ 1);
    for unknown in [
        "",
        "0",
        "x-0",
        "0-0",
        &neighbour,
        &format!("{id}-1"),
        &format!("{id}x"),
    ] {
        let error = here
            .replay_events_after(unknown)
            .await
            .err()
            .unwrap_or_else(|| panic!("{unknown:?} named an event"));
        assert!(error.to_string().contains("Last-Event-ID"), "{error}");
    }
    assert!(elsewhere.replay_events_after(&id).await.is_err());
}

#[tokio::test]
async fn answered_streams_are_forgotten_after_their_time_and_running_ones_when_silent() {
    let events = events(Limits {
        after_answer: Duration::from_millis(100),
        while_silent: Duration::from_millis(400),
        ..limits()
    });
    let answered = events.store_event("answered", &progress(1)).await.unwrap();
    events.store_event("answered", &answer(1, 1)).await.unwrap();
    let running = events.store_event("running", &progress(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    events.store_event("third", &progress(1)).await.unwrap();
    assert!(events.replay_events_after(&answered).await.is_err());
    assert!(events.replay_events_after(&running).await.is_ok());
    tokio::time::sleep(Duration::from_millis(300)).await;
    events.store_event("third", &progress(2)).await.unwrap();
    assert!(events.replay_events_after(&running).await.is_err());
}

#[tokio::test]
async fn past_the_byte_limit_answered_streams_go_first_and_the_growing_one_stays() {
    let events = events(Limits {
        bytes: 3000,
        ..limits()
    });
    let old_answered = events.store_event("a", &priming()).await.unwrap();
    events.store_event("a", &answer(1, 1000)).await.unwrap();
    let running = events.store_event("b", &priming()).await.unwrap();
    events.store_event("b", &progress(1)).await.unwrap();
    let newer_answered = events.store_event("c", &priming()).await.unwrap();
    events.store_event("c", &answer(3, 1000)).await.unwrap();
    // A third big answer: the oldest answered stream goes, the running one stays.
    let big = events.store_event("d", &priming()).await.unwrap();
    events.store_event("d", &answer(4, 1000)).await.unwrap();
    assert!(events.replay_events_after(&old_answered).await.is_err());
    assert!(events.replay_events_after(&running).await.is_ok());
    assert_eq!(
        replayed(&events, &newer_answered).await,
        [json!({ "answer": 3 })]
    );
    assert_eq!(replayed(&events, &big).await, [json!({ "answer": 4 })]);
    // One answer larger than the whole limit is still kept, alone.
    let huge = events.store_event("e", &priming()).await.unwrap();
    events.store_event("e", &answer(5, 5000)).await.unwrap();
    assert_eq!(replayed(&events, &huge).await, [json!({ "answer": 5 })]);
    assert!(events.replay_events_after(&running).await.is_err());
}

#[tokio::test]
async fn a_stream_keeps_its_latest_events_and_a_replay_from_before_them_starts_there() {
    let events = events(Limits {
        events_per_stream: 3,
        ..limits()
    });
    let first = events.store_event("call", &priming()).await.unwrap();
    for step in 1..=5 {
        events.store_event("call", &progress(step)).await.unwrap();
    }
    events.store_event("call", &answer(1, 1)).await.unwrap();
    assert_eq!(
        replayed(&events, &first).await,
        [json!(4), json!(5), json!({ "answer": 1 })]
    );
}

#[tokio::test]
async fn the_session_stream_never_ends_with_an_answer() {
    let events = events(limits());
    let first = events.store_event("s:common", &progress(1)).await.unwrap();
    events.store_event("s:common", &answer(1, 1)).await.unwrap();
    events.store_event("s:common", &progress(2)).await.unwrap();
    let mut stream = events.replay_events_after(&first).await.unwrap();
    assert_eq!(
        summary(&stream.next().await.unwrap()),
        json!({ "answer": 1 })
    );
    assert_eq!(summary(&stream.next().await.unwrap()), json!(2));
    // It waits for more rather than ending.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), stream.next())
            .await
            .is_err()
    );
}
