//! What hostile or merely numerous HTTP clients can no longer do, through real sockets on
//! loopback: hold connections or memory without end, starve a legitimate client, open sessions
//! without bound, or get an edit billed twice under one request id.
#![cfg(unix)]

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use reve_tests::Scenario;
use reve_tests::fake::{data_uri, noise_png, sample_png};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::mcp_http::{
    HttpServer, PATIENCE, PROTOCOL_VERSION, env, initialize_request, padded_request, post_to,
    sse_messages, tools_call,
};
use crate::support::World;

/// Sends `head` (and nothing more) on a fresh connection and returns what the server
/// answers until it closes the connection or `PATIENCE` runs out.
async fn raw_exchange(addr: SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The head of a JSON-RPC POST to `/mcp` declaring a body of `length` bytes.
fn post_head(addr: SocketAddr, length: usize) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: \
         application/json, text/event-stream\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// Whether the server has closed `stream` (a read returns end of file or an error), waiting at
/// most `PATIENCE`.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn a_declared_body_over_the_limit_gets_413_before_it_is_sent() {
    let world = World::new().await;
    let server =
        HttpServer::start(&env(&world), &["--stateless", "--max-body-bytes", "100000"]).await;
    // Not one byte of the body is sent: the answer comes from the head alone.
    for length in [100_001, 40 * 1024 * 1024] {
        let answer = raw_exchange(server.addr, &post_head(server.addr, length)).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{length}: {answer}");
        assert!(
            answer.contains(&format!("the body is {length} bytes")),
            "{answer}"
        );
        assert!(
            answer.contains("at most 100000 bytes (REVE_HTTP_MAX_BODY_BYTES)"),
            "{answer}"
        );
    }
    // At the limit, the request is read and served.
    let response = post_to(&server.url(), &json!(null))
        .body(padded_request(100_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_trickles_is_cut_off_and_its_room_given_back() {
    let world = World::new().await;
    let server = HttpServer::start(
        &env(&world),
        &[
            "--stateless",
            "--max-body-bytes",
            "100000",
            "--max-body-bytes-in-flight",
            "100000",
        ],
    )
    .await;
    // 100000 bytes declared, 10 sent: the allowance is 10 s for the declared size.
    let head = post_head(server.addr, 100_000);
    let answer = raw_exchange(server.addr, &format!("{head}{{\"jsonrpc\"")).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 10 s"), "{answer}");
    // Its room among the bodies in flight was given back: a full-size body fits again.
    let response = post_to(&server.url(), &json!(null))
        .body(padded_request(100_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn hostile_connections_are_capped_timed_out_and_do_not_starve_a_client() {
    // This test process holds the hostile side: 350 descriptors beside the other tests' own.
    reve_mcp::raise_limit();
    let world = World::new().await;
    let mut server = HttpServer::start(
        &env(&world),
        &[
            "--stateless",
            "--max-connections",
            "300",
            "--idle-timeout-secs",
            "2",
        ],
    )
    .await;
    // 250 connections that never finish a request head: half silent, half mid-header.
    let mut hostile = Vec::new();
    for index in 0..250 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        if index % 2 == 1 {
            stream
                .write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ")
                .await
                .unwrap();
        }
        hostile.push(stream);
    }
    // A legitimate client is served meanwhile.
    let response = post_to(&server.url(), &initialize_request())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("serverInfo"));

    // Past the cap, connections are closed as soon as they are accepted.
    let mut over = Vec::new();
    for _ in 0..100 {
        over.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let mut closed_at_once = 0;
    for stream in &mut over {
        if closed_by_server(stream).await {
            closed_at_once += 1;
        }
    }
    assert!(closed_at_once >= 40, "only {closed_at_once} of 100 refused");
    server.wait_for_log("the connection limit is reached").await;

    // The idle timeout closes every hostile connection, silent or mid-header.
    for stream in &mut hostile {
        assert!(
            closed_by_server(stream).await,
            "a hostile connection was kept open"
        );
    }

    // A request head far over 32 KiB is refused with 431.
    let answer = raw_exchange(
        server.addr,
        &format!(
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: {}\r\n\r\n",
            "a".repeat(100 * 1024)
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let response = reqwest::get(format!("http://{}/healthz", server.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn sessions_stop_at_the_cap_until_one_is_closed() {
    let world = World::new().await;
    let server = HttpServer::start(&env(&world), &["--max-sessions", "3"]).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let response = server.post(&initialize_request()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let id = response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        sessions.push(id);
    }
    let response = server.post(&initialize_request()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    let text = response.text().await.unwrap();
    assert!(
        text.contains("as many sessions open as it may (3)"),
        "{text}"
    );

    let closed = reqwest::Client::new()
        .delete(server.url())
        .header("mcp-session-id", &sessions[0])
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "{}", closed.status());
    let response = server.post(&initialize_request()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn a_request_id_already_in_flight_is_refused_before_any_work() {
    let world = World::new().await;
    let server = HttpServer::start(&env(&world), &[]).await;
    let response = server.post(&initialize_request()).send().await.unwrap();
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let in_session = |body: &serde_json::Value| {
        server
            .post(body)
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", PROTOCOL_VERSION)
    };
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    assert!(
        in_session(&initialized)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );

    world.fake.push(Scenario::Latency(Duration::from_secs(2)));
    let input = data_uri("image/png", &sample_png(16, 16));
    let call = tools_call(9, json!({ "prompt": "p", "image_url": input }), None);
    let first = tokio::spawn(in_session(&call).send());
    tokio::time::timeout(
        PATIENCE,
        world.fake.wait_until(|c| c.generation_attempts == 1),
    )
    .await
    .unwrap();

    let second = in_session(&call).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::BAD_REQUEST);
    let error: serde_json::Value = second.json().await.unwrap();
    assert_eq!(error["error"]["code"], -32600, "{error}");
    assert!(error["id"].is_null(), "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("request id 9 is already in flight"),
        "{message}"
    );

    let first = first.await.unwrap().unwrap();
    let messages = sse_messages(&first.text().await.unwrap());
    let result = messages.iter().find(|message| message["id"] == 9).unwrap();
    assert_eq!(result["result"]["isError"], false, "{result}");
    assert_eq!(world.fake.generation_attempts(), 1);

    // Once answered, the id may be used again.
    let again = in_session(&tools_call(
        9,
        json!({ "prompt": "p", "image_url": input }),
        None,
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let messages = sse_messages(&again.text().await.unwrap());
    assert!(
        messages
            .iter()
            .any(|message| message["id"] == 9 && message["result"].is_object())
    );
    assert_eq!(world.fake.generation_attempts(), 2);
    server.stop().await;
}

#[tokio::test]
async fn bodies_in_flight_are_bounded_and_a_request_without_room_gets_503() {
    let world = World::new().await;
    let server = HttpServer::start(
        &env(&world),
        &[
            "--stateless",
            "--max-body-bytes",
            "1000000",
            "--max-body-bytes-in-flight",
            "1000000",
        ],
    )
    .await;
    // An edit whose ~700 KB body is held while the fake takes 15 s.
    world.fake.push(Scenario::Latency(Duration::from_secs(15)));
    let big_input = data_uri("image/png", &noise_png(400));
    assert!(
        big_input.len() > 600_000 && big_input.len() < 900_000,
        "{}",
        big_input.len()
    );
    let call = tools_call(1, json!({ "prompt": "p", "image_url": big_input }), None);
    let first = tokio::spawn(
        post_to(&server.url(), &call)
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .send(),
    );
    tokio::time::timeout(
        PATIENCE,
        world.fake.wait_until(|c| c.generation_attempts == 1),
    )
    .await
    .unwrap();

    // A small request still fits beside it.
    let list = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" });
    let response = post_to(&server.url(), &list)
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // A second big one does not: after waiting its turn for 10 s, it is told to retry.
    let second = post_to(&server.url(), &call)
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.headers()["retry-after"], "5");
    assert_eq!(world.fake.generation_attempts(), 1);

    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    first.text().await.unwrap();
    server.stop().await;
}
