//! A fake of the AIML API's image generation endpoint for the three Reve models
//! (`reve/edit-image`, `reve/create-image`, `reve/remix-edit-image`), served on
//! 127.0.0.1.
//!
//! # Why it exists
//!
//! The project's tests may not reach the network, and the real service costs
//! money, is slow and cannot be made to fail on demand. This fake stands in for
//! `https://api.aimlapi.com` (and its CDN) in reve-core's tests, reve-mcp's
//! end-to-end tests and `cargo xtask demo`. It deliberately does not depend on
//! reve-core: it is written from the published contract (the three documents
//! in `spec/` and the documentation's example responses), so it checks the
//! client against the vendor's contract rather than against the client's own
//! reading of it.
//!
//! # How faithful it is
//!
//! Checked against the published contract:
//! - `POST /v1/images/generations` with `Authorization: Bearer <key>` (401
//!   otherwise).
//! - The body is validated with the request schema of the model it names,
//!   taken verbatim from that model's document (`required`, the `model` enum,
//!   `prompt`'s `maxLength` of 2560, types, `image_url`'s `uri` format, the
//!   seven `aspect_ratio`s, one to four `image_urls`); a model it does not
//!   serve is refused as outside the enum of the three. Failures answer 400 with the
//!   documented body `{"message", "path", "requestId", "statusCode",
//!   "timestamp"}` whose `message` is an array, as the NestJS-based API does.
//! - Success is shaped key for key like the published example:
//!   `{"data":[{"url","b64_json","request_id","content_violation"}],
//!   "meta":{"usage":{"tokens_used":210000}}}` (126000 for a create, as its
//!   example reports), with a downloadable `url`
//!   unless `convert_base64_to_url` is `false`, in which case `b64_json`
//!   holds the image and `url` is null.
//!
//! Inferred, not published (the fake's best guess at the real behaviour):
//! - Validation messages use class-validator's wording and never echo values.
//! - A body is parsed as JSON only under a JSON `Content-Type`, otherwise
//!   treated as `{}` (Express); invalid JSON gets a 400 with a string message.
//! - Out-of-credits answers 403 in the other error shape AIML uses,
//!   `{"error":{"name","message"}}`.
//! - Responses use `Content-Type: application/json; charset=utf-8`.
//! - Bodies over [`DEFAULT_MAX_BODY_BYTES`] get 413.
//! - Unknown routes get NestJS's 404 `Cannot <METHOD> <path>`.
//!
//! Deliberately different:
//! - The "edit" is not generative: the result is the input, resized if the fake
//!   was told to ([`FakeApiBuilder::result_size`]), with its colours inverted
//!   ([`edit()`]). Tests can predict every pixel. A remix is its first picture
//!   edited the same way at its aspect ratio's size (every picture is still
//!   fetched and decoded); a create is [`sample_image`] at that size. The
//!   published example gives 16:9 as 1360x768; the other ratios keep about its
//!   area.
//! - `image_url` may be a `data:` URI (decoded) or an `http(s)` URL on a
//!   loopback host (fetched; see [`FakeApi::serve_input`]). Other hosts are
//!   refused with 400 `image_url could not be fetched`, so nothing ever leaves
//!   the machine.
//! - Results are served by the fake itself under `/files/`, not by a CDN.
//! - Ids are deterministic per fake.
//!
//! Everything else (errors, rate limits, broken connections, huge or slow
//! downloads) happens on demand through [`Scenario`]s: queue one per request
//! with [`FakeApi::push`], or change the fallback with
//! [`FakeApi::set_default`]. Every request is recorded ([`RecordedRequest`])
//! and counted ([`Counters`]), including requests a client abandoned.
//!
//! ```no_run
//! # async fn example() {
//! use reve_tests::fake::{self, FakeApi, Scenario};
//!
//! let fake = FakeApi::start().await;
//! fake.push(Scenario::ServerError(503));
//! let image_url = fake::data_uri("image/png", &fake::sample_png(64, 48));
//! // ... point the client at fake.base_url() with fake.api_key(), send image_url ...
//! assert_eq!(fake.generation_attempts(), 2); // the 503, then the retry
//! # }
//! ```

mod asked;
mod delivery;
mod edit;
mod error_body;
mod files;
mod generation;
mod ids;
mod input;
mod ledger;
mod record;
mod samples;
mod scenario;
mod schema;
mod server;
mod state;

pub use edit::{ResultFormat, edit};
pub use ledger::{CREDITS_PER_USD, LOGS_REQUESTS_PER_WINDOW, LOGS_WINDOW, LogRow, LogsScenario};
pub use record::{Counters, RecordedRequest};
pub use samples::{
    TWO_COLOURS, data_uri, gif_canvas, grey_png, interlaced_gif_canvas, interlaced_png, noise_png,
    palette_png, png_declaring, sample_gif, sample_image, sample_jpeg, sample_png, sample_webp,
    two_colour_png,
};
pub use scenario::{RetryAfter, SLOW_BODY_CHUNKS, Scenario};
pub use server::{DEFAULT_MAX_BODY_BYTES, FakeApi, FakeApiBuilder, TEST_API_KEY};
