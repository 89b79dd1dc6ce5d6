//! The stdio transport, with the JSON-RPC answers rmcp leaves out.
//!
//! rmcp 3.11 drops a line that is not JSON without a word (rmcp issue #938:
//! to avoid error storms), answers a `tools/call` whose params do not parse
//! with -32601 "method not found", and drops a line over its 16 MiB cap so
//! that the caller waits for an answer that never comes. JSON-RPC 2.0 wants
//! -32700, -32602 and an answer for each; an agent stuck until its timeout
//! on a large `data:` URI is the worst of the three. So stdin passes through
//! a small line filter before it reaches rmcp: lines rmcp would mishandle are
//! answered here, everything else is forwarded byte for byte. Our answers
//! are written to stdout between rmcp's lines, never inside one.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::error::Category;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// rmcp's own cap on one incoming line; a longer one is answered here.
const RMCP_MAX_LINE: usize = rmcp::transport::async_rw::DEFAULT_MAX_LINE_LENGTH;

/// Longest line buffered to find its id for the error answer; past this the
/// line is skipped without being held, and answered with a null id.
const MAX_BUFFERED_LINE: usize = 4 * RMCP_MAX_LINE;

/// Room in each in-process pipe; only a buffer, messages may be larger.
const PIPE_CAPACITY: usize = 256 * 1024;

/// What rmcp reads and writes, and the task that carries its output to the
/// real stdout; await it after the service ends so every answer is flushed.
pub struct GuardedStdio {
    pub transport: (DuplexStream, DuplexStream),
    pub output: JoinHandle<io::Result<()>>,
}

/// Puts the line filter between `input`/`output` (the process's stdin and
/// stdout) and rmcp.
pub fn guard<R, W>(input: R, output: W) -> GuardedStdio
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (rmcp_reads, to_rmcp) = tokio::io::duplex(PIPE_CAPACITY);
    let (rmcp_writes, from_rmcp) = tokio::io::duplex(PIPE_CAPACITY);
    let (answers, answered) = mpsc::channel(64);
    tokio::spawn(filter_input(BufReader::new(input), to_rmcp, answers));
    let output = tokio::spawn(merge_output(BufReader::new(from_rmcp), answered, output));
    GuardedStdio {
        transport: (rmcp_reads, rmcp_writes),
        output,
    }
}

async fn filter_input<R: AsyncBufRead + Unpin>(
    mut input: R,
    mut to_rmcp: DuplexStream,
    answers: mpsc::Sender<Vec<u8>>,
) -> io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = read_line_bounded(&mut input, &mut line, MAX_BUFFERED_LINE).await?;
        let answer = match read {
            LineRead::Eof => return to_rmcp.shutdown().await,
            LineRead::TooLong { bytes } => Some(too_long(None, bytes)),
            LineRead::Line => check(&line),
        };
        match answer {
            Some(answer) => {
                if answers.send(answer).await.is_err() {
                    return Ok(());
                }
            }
            None => {
                to_rmcp.write_all(&line).await?;
                if line.last() != Some(&b'\n') {
                    to_rmcp.write_all(b"\n").await?;
                }
            }
        }
    }
}

/// The parts of a JSON-RPC message the filter looks at. Values are borrowed
/// as raw text and unknown fields skipped, so a message carrying a large
/// `data:` URI is checked without building or copying its contents.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// The answer this filter gives for `line`, or `None` to hand it to rmcp.
fn check(line: &[u8]) -> Option<Vec<u8>> {
    if line.trim_ascii().is_empty() {
        return None;
    }
    let message: Envelope = match serde_json::from_slice(line) {
        Ok(message) => message,
        // The wrong shape may have stopped the parse before a syntax error
        // further on; valid JSON of another shape (a batch, a method that is
        // not a string) is rmcp's to judge.
        Err(error)
            if error.classify() == Category::Data
                && serde_json::from_slice::<IgnoredAny>(line).is_ok() =>
        {
            return None;
        }
        Err(error) => {
            return Some(error_line(
                &Value::Null,
                -32700,
                &format!("Parse error: {error}"),
            ));
        }
    };
    let id = message
        .id
        .map(|id| serde_json::from_str::<Value>(id.get()).unwrap_or(Value::Null))
        .filter(|id| !id.is_null());
    if line.len() > RMCP_MAX_LINE {
        // A notification gets no answer, not even an error.
        return id.map(|id| too_long(Some(&id), line.len()));
    }
    let id = id?;
    if message.method.as_deref() == Some("tools/call")
        && !tool_call_params_are_well_formed(message.params)
    {
        return Some(error_line(
            &id,
            -32602,
            "Invalid params: tools/call takes {\"name\": string, \"arguments\": object}",
        ));
    }
    None
}

fn tool_call_params_are_well_formed(params: Option<&RawValue>) -> bool {
    let Some(params) = params else {
        return false;
    };
    let Ok(fields) = serde_json::from_str::<HashMap<Cow<'_, str>, &RawValue>>(params.get()) else {
        return false;
    };
    let name_ok = fields
        .get("name")
        .is_some_and(|name| name.get().starts_with('"'));
    let arguments_ok = fields
        .get("arguments")
        .is_none_or(|arguments| arguments.get() == "null" || arguments.get().starts_with('{'));
    name_ok && arguments_ok
}

fn too_long(id: Option<&Value>, bytes: usize) -> Vec<u8> {
    error_line(
        id.unwrap_or(&Value::Null),
        -32600,
        &format!(
            "Invalid request: the message is {bytes} bytes; the limit over stdio is {RMCP_MAX_LINE} \
             bytes. Pass a large image as a local file path or an http(s) URL, not a data: URI."
        ),
    )
}

fn error_line(id: &Value, code: i64, message: &str) -> Vec<u8> {
    let answer = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code, "message": message },
    });
    let mut line = answer.to_string().into_bytes();
    line.push(b'\n');
    line
}

enum LineRead {
    Line,
    TooLong { bytes: usize },
    Eof,
}

/// Reads one `\n`-terminated line into `line`, holding at most `cap` bytes
/// of it: past that the rest is consumed and counted, not kept.
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    input: &mut R,
    line: &mut Vec<u8>,
    cap: usize,
) -> io::Result<LineRead> {
    let mut total = 0usize;
    loop {
        let available = input.fill_buf().await?;
        if available.is_empty() {
            return Ok(match total {
                0 => LineRead::Eof,
                bytes if bytes > cap => LineRead::TooLong { bytes },
                _ => LineRead::Line,
            });
        }
        let (chunk, done) = match available.iter().position(|&byte| byte == b'\n') {
            Some(end) => (&available[..=end], true),
            None => (available, false),
        };
        let taken = chunk.len();
        if total + taken <= cap {
            line.extend_from_slice(chunk);
        } else {
            line.clear();
        }
        total += taken;
        input.consume(taken);
        if done {
            return Ok(if total > cap {
                LineRead::TooLong { bytes: total }
            } else {
                LineRead::Line
            });
        }
    }
}

/// Copies rmcp's output to `stdout` line by line, slipping this filter's
/// answers in between lines.
async fn merge_output<W: AsyncWrite + Unpin>(
    mut from_rmcp: BufReader<DuplexStream>,
    mut answered: mpsc::Receiver<Vec<u8>>,
    mut stdout: W,
) -> io::Result<()> {
    let mut line = Vec::new();
    loop {
        tokio::select! {
            // `read_until` keeps what it has read in `line` when the other
            // branch wins, and carries on from there on the next turn.
            read = from_rmcp.read_until(b'\n', &mut line) => {
                if read? == 0 {
                    break;
                }
                if line.last() == Some(&b'\n') {
                    stdout.write_all(&line).await?;
                    stdout.flush().await?;
                    line.clear();
                }
            }
            Some(answer) = answered.recv() => {
                stdout.write_all(&answer).await?;
                stdout.flush().await?;
            }
        }
    }
    stdout.write_all(&line).await?;
    while let Ok(answer) = answered.try_recv() {
        stdout.write_all(&answer).await?;
    }
    stdout.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(line: &str) -> Option<Value> {
        check(line.as_bytes()).map(|bytes| serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn well_formed_messages_pass_through() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"edit_image","arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"edit_image"}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":4,"method":"tools\/call","params":{"name":"e\u0064it","arguments":{"prompt":"say \"hi\""}}}"#,
            // Valid JSON of another shape is left to rmcp.
            r#"[{"jsonrpc":"2.0","id":5,"method":"tools/list"}]"#,
            r#"{"jsonrpc":"2.0","id":6,"method":7}"#,
            "   ",
        ] {
            assert_eq!(answer(line), None, "{line}");
        }
    }

    #[test]
    fn a_line_that_is_not_json_gets_a_parse_error() {
        // `[1, 2` reads as the start of a message of the wrong shape before
        // it is found to be cut off.
        for line in ["this is not json", "[1, 2", r#"{"id":1,"method":7"#] {
            let answer = answer(line).unwrap();
            assert_eq!(answer["id"], Value::Null, "{line}");
            assert_eq!(answer["error"]["code"], -32700, "{line}");
        }
    }

    #[test]
    fn malformed_tool_call_params_get_invalid_params_with_the_id() {
        for params in [
            "null",
            "[]",
            r#"{"arguments":{}}"#,
            r#"{"name":7}"#,
            r#"{"name":"edit_image","arguments":"x"}"#,
        ] {
            let line =
                format!(r#"{{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{params}}}"#);
            let answer = answer(&line).unwrap();
            assert_eq!(answer["id"], "a", "{params}");
            assert_eq!(answer["error"]["code"], -32602, "{params}");
        }
    }

    #[tokio::test]
    async fn a_line_over_the_cap_is_answered_with_its_size_and_not_kept() {
        let input = format!("{}\nnext\n", "x".repeat(100));
        let mut reader = BufReader::with_capacity(16, input.as_bytes());
        let mut line = Vec::new();
        let read = read_line_bounded(&mut reader, &mut line, 50).await.unwrap();
        assert!(matches!(read, LineRead::TooLong { bytes: 101 }));
        assert!(line.is_empty());
        line.clear();
        let read = read_line_bounded(&mut reader, &mut line, 50).await.unwrap();
        assert!(matches!(read, LineRead::Line));
        assert_eq!(line, b"next\n");
        line.clear();
        let read = read_line_bounded(&mut reader, &mut line, 50).await.unwrap();
        assert!(matches!(read, LineRead::Eof));
    }
}
