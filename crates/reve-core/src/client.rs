//! The client: the public entry points of an edit, from a checked request body to the result
//! image in memory or, as it arrives, in a file.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::arrival::{ArrivingImage, Publisher};

use crate::body::RequestBody;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::{ImageFormat, describe_non_image};
use crate::generated::{CreateImageRequest, EditImageRequest, RemixEditImageRequest};
use crate::image::ImageSource;
use crate::output::{EditedImage, StagedImage, create_temp_in};
use crate::response::{Generated, Generation, ResultImage, decode_base64_image, text_excerpt};
use crate::retry;
use crate::sink::{BatchedWrites, Sink};
use crate::text::error_chain;
use crate::transport::{self, Call};

/// How long opening a connection may take before it counts as a (retryable) connection failure,
/// so that one unreachable address does not use up the whole deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A client for the Reve models: [`Client::edit_image`], [`Client::create`] and
/// [`Client::remix`], or any model's [`RequestBody`] with [`Client::edit`] and
/// [`Client::edit_into_dir`].
///
/// Cheap to construct (the HTTP client and its TLS setup are built on first use, which keeps a
/// server's cold start fast) and cheap to clone (clones share one connection pool). The same HTTP
/// client posts requests and downloads result images.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    http: OnceLock<reqwest::Client>,
}

impl Client {
    /// Creates a client; fails only if the config is unusable (a zero timeout or size limit).
    pub fn new(config: Config) -> Result<Client> {
        Client::build(config, OnceLock::new())
    }

    /// Creates a client that sends through `http`, for callers that need their own proxy, TLS
    /// roots or connection pool. Its own timeouts, if any, apply on top of the config's deadline.
    pub fn with_http_client(config: Config, http: reqwest::Client) -> Result<Client> {
        Client::build(config, OnceLock::from(http))
    }

    fn build(config: Config, http: OnceLock<reqwest::Client>) -> Result<Client> {
        config.validate()?;
        Ok(Client {
            inner: Arc::new(Inner { config, http }),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Edits an image as `request.prompt` describes and returns the result, held in memory.
    ///
    /// Checks the request first (see [`RequestBody::new`]) and sends nothing if it fails. Then
    /// posts it, retrying transient failures (HTTP 408, 429, 500, 502, 503, 504 and connection
    /// failures, honouring `Retry-After`; never 400, 401, 403, 404 or 422), and fetches the
    /// image: downloaded through this client when the API returns a URL, decoded when it returns
    /// base64. Everything happens within the configured timeout.
    ///
    /// None of the retried failures delivered an image, but a 502 or 504 comes from a gateway
    /// that may have given up on a generation the model still finished and billed; that rare
    /// case is why retries are few by default and can be disabled with
    /// [`Config::with_max_retries`]`(0)`.
    pub async fn edit_image(&self, request: &EditImageRequest) -> Result<EditedImage> {
        let body = RequestBody::new(request, self.inner.config.max_input_bytes())?;
        self.edit(&body).await
    }

    /// Makes a picture from words alone with `reve/create-image`, and returns it held in
    /// memory: the same checks, retries, deadline and fetching as [`Client::edit_image`].
    ///
    /// ```
    /// use reve_core::{Client, Config, CreateImageRequest, CreateImageRequestAspectRatio};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let fake = reve_tests::FakeApi::start().await;
    /// # let out_dir = tempfile::tempdir()?;
    /// # let config = Config::default().with_api_key(fake.api_key()).with_base_url(fake.base_url())?;
    /// let client = Client::new(config)?;
    /// let mut request = CreateImageRequest::new("A lighthouse on a cliff at dawn, watercolour");
    /// request.aspect_ratio = Some(CreateImageRequestAspectRatio::V16_9);
    /// let created = client.create(&request).await?;
    /// let saved = created.save_in(out_dir.path(), Some("lighthouse.png"))?;
    /// println!("saved {} ({:?})", saved.display(), created.dimensions()?);
    /// # assert_eq!(created.dimensions()?, (1360, 768));
    /// # assert_eq!(fake.requests()[0].json.as_ref().unwrap()["aspect_ratio"], "16:9");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create(&self, request: &CreateImageRequest) -> Result<EditedImage> {
        let body = RequestBody::new(request, self.inner.config.max_input_bytes())?;
        self.edit(&body).await
    }

    /// Combines one to four pictures into one as the prompt says, with
    /// `reve/remix-edit-image`, and returns it held in memory: the same checks, retries,
    /// deadline and fetching as [`Client::edit_image`]. The published documents do not say how
    /// a prompt refers to each picture; it is passed as written. Local pictures go in as
    /// `data:` URIs ([`crate::ImageSource::into_image_url`]), or straight from their files with
    /// [`RequestBody::with_image_files`].
    ///
    /// ```
    /// use reve_core::{Client, Config, ImageSource, RemixEditImageRequest};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let fake = reve_tests::FakeApi::start().await;
    /// # let out_dir = tempfile::tempdir()?;
    /// # let dinosaur = out_dir.path().join("t-rex.png");
    /// # std::fs::write(&dinosaur, reve_tests::fake::sample_png(64, 48))?;
    /// # let cafe = out_dir.path().join("cafe.png");
    /// # std::fs::write(&cafe, reve_tests::fake::sample_png(80, 60))?;
    /// # let config = Config::default().with_api_key(fake.api_key()).with_base_url(fake.base_url())?;
    /// let client = Client::new(config.clone())?;
    /// let mut pictures = Vec::new();
    /// for path in [&dinosaur, &cafe] {
    ///     let source = ImageSource::parse(path.to_str().unwrap())?;
    ///     pictures.push(source.into_image_url(config.max_input_bytes())?);
    /// }
    /// let request = RemixEditImageRequest::new(pictures, "Put the dinosaur in the café, holding a mug");
    /// let remixed = client.remix(&request).await?;
    /// println!("{} bytes of {}", remixed.bytes.len(), remixed.metadata.mime_type());
    /// # assert_eq!(remixed.dimensions()?, (1248, 832)); // 3:2, the document's default
    /// # assert_eq!(fake.requests()[0].json.as_ref().unwrap()["image_urls"].as_array().unwrap().len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn remix(&self, request: &RemixEditImageRequest) -> Result<EditedImage> {
        let body = RequestBody::new(request, self.inner.config.max_input_bytes())?;
        self.edit(&body).await
    }

    /// Sends a prepared body of any model, as [`Client::edit_image`] does, and returns the
    /// result in memory.
    ///
    /// An inline image over this client's [`Config::max_input_bytes`] is refused unsent, even if
    /// the body was built with a higher limit.
    pub async fn edit(&self, body: &RequestBody) -> Result<EditedImage> {
        let call = self.start(body)?;
        let generation = self
            .generate(&call, body, |_| std::future::ready(true))
            .await?;
        let mut sink = Sink::Memory(Vec::new());
        let format = fetch(&call, &generation.image, &mut sink).await?;
        let Sink::Memory(bytes) = sink else {
            unreachable!("the sink stays in memory")
        };
        Ok(EditedImage {
            bytes: Bytes::from(bytes),
            metadata: generation.metadata(format),
        })
    }

    /// Sends a prepared body, as [`Client::edit`] does, but writes the result to a hidden
    /// temporary file in `dir` as it arrives instead of holding it in memory; see
    /// [`StagedImage`].
    ///
    /// `dir` is created and the temporary file opened before the request is sent, so a folder
    /// that cannot be written to fails the call before it can cost anything. The file is deleted
    /// on any error, and when the returned image is dropped without being persisted.
    pub async fn edit_into_dir(&self, body: &RequestBody, dir: &Path) -> Result<StagedImage> {
        self.edit_into_dir_reporting(body, dir, |_, _| async {})
            .await
    }

    /// [`Client::edit_into_dir`], telling `on_generated` what the API answered as soon as it
    /// answers, and waiting for it before the image is fetched. A caller that records it (the
    /// result's URL above all) can still fetch a paid result with [`Client::download_into_dir`]
    /// if this process dies, or the download fails, before the bytes are safe on disk.
    ///
    /// `on_generated` also gets an [`ArrivingImage`], a reader of the image as it downloads, for
    /// work that need not wait for the last byte: a preview's decoder, say, can then overlap
    /// the download instead of following it. Dropping it costs nothing.
    pub async fn edit_into_dir_reporting<Recorded: Future<Output = ()>>(
        &self,
        body: &RequestBody,
        dir: &Path,
        on_generated: impl FnOnce(Generated, ArrivingImage) -> Recorded,
    ) -> Result<StagedImage> {
        self.edit_into_dir_announcing(body, dir, |_| std::future::ready(true), on_generated)
            .await
    }

    /// [`Client::edit_into_dir_reporting`], awaiting `before_retry` with each retry's number
    /// (2, 3, ...) before that request is sent again: the answer `false` sends no more, and
    /// the call fails with the last attempt's error.
    ///
    /// Every attempt carries the body's [`ClientRequestId`](crate::ClientRequestId), and the provider's usage logs list
    /// each one. A caller that settles an interrupted request from them (charged, or not) must
    /// know how many attempts to find there: recording each retry before it is sent, and
    /// sending none it could not record, keeps that count from ever being too low.
    pub async fn edit_into_dir_announcing<Recorded, Announced>(
        &self,
        body: &RequestBody,
        dir: &Path,
        before_retry: impl FnMut(u32) -> Announced,
        on_generated: impl FnOnce(Generated, ArrivingImage) -> Recorded,
    ) -> Result<StagedImage>
    where
        Recorded: Future<Output = ()>,
        Announced: Future<Output = bool>,
    {
        let call = self.start(body)?;
        let (staging, arriving) = stage_in(dir).await?;
        let generation = self.generate(&call, body, before_retry).await?;
        on_generated(generation.summary(), arriving).await;
        fetch_staged(&call, generation, staging, dir).await
    }

    /// Downloads the image of an earlier generation into a hidden temporary file in `dir`, as
    /// [`Client::edit_into_dir`] would have: the same checks on type and size, within a fresh
    /// deadline, with retries, and with `generated`'s request id and usage in its metadata.
    /// Nothing is posted, so nothing is paid for again.
    ///
    /// Fails unsent when `generated` has no URL (its image came inline and is gone).
    pub async fn download_into_dir(
        &self,
        generated: &Generated,
        dir: &Path,
    ) -> Result<StagedImage> {
        let Some(url) = &generated.url else {
            return Err(Error::Decode {
                reason: "the generation's image came inline as base64 and has no URL to fetch \
                         it from again"
                    .into(),
                body: None,
            });
        };
        let call = self.call()?;
        let (staging, _) = stage_in(dir).await?;
        fetch_staged(
            &call,
            Generation::from_summary(generated, url),
            staging,
            dir,
        )
        .await
    }

    /// The checks and set-up every call makes before sending anything.
    fn start(&self, body: &RequestBody) -> Result<Call<'_>> {
        body.check_image_limit(self.inner.config.max_input_bytes())?;
        self.call()
    }

    /// A call's key, HTTP client and deadline.
    fn call(&self) -> Result<Call<'_>> {
        let config = &self.inner.config;
        Ok(Call {
            key: config.api_key().ok_or(Error::MissingApiKey)?,
            http: self.http()?,
            deadline: Instant::now() + config.timeout(),
            config,
        })
    }

    /// Posts the body, with retries, and reads what the API says about the image it made.
    async fn generate<Announced: Future<Output = bool>>(
        &self,
        call: &Call<'_>,
        body: &RequestBody,
        before_retry: impl FnMut(u32) -> Announced,
    ) -> Result<Generation> {
        let endpoint = self.inner.config.endpoint_url();
        tracing::info!(
            %endpoint,
            prompt_chars = body.prompt_chars(),
            body_bytes = body.as_json().len(),
            "requesting an image edit"
        );
        let response = retry::run_announcing(
            self.inner.config.retry_policy(),
            call.deadline,
            |attempt| {
                transport::post(
                    call,
                    &endpoint,
                    body.bytes(),
                    body.client_request_id(),
                    attempt,
                )
            },
            before_retry,
        )
        .await?;
        Generation::from_response(response.0, response.1)
    }

    pub(crate) fn http(&self) -> Result<&reqwest::Client> {
        if let Some(http) = self.inner.http.get() {
            return Ok(http);
        }
        let built = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(redirect_policy(&self.inner.config))
            .build()
            .map_err(|error| Error::InvalidConfig {
                reason: format!("could not set up the HTTP client: {}", error_chain(&error)),
            })?;
        // Two first calls racing both build one; the loser's is dropped, which is harmless.
        Ok(self.inner.http.get_or_init(|| built))
    }
}

/// Redirects followed before a request is given up; a CDN needs one or two.
pub(crate) const MAX_REDIRECTS: usize = 3;

/// Where a redirect may lead. The POST carries the key and the input picture, so it follows
/// only redirects within the API's own origin (scheme, host and port); anywhere else the request
/// fails rather than sending the picture to a host nobody chose. A result download carries
/// neither and may go to any https:// URL (CDNs redirect between their hosts), or stay within the
/// API's origin (a fake on loopback speaks plain http); never to plain http elsewhere, and at
/// most [`MAX_REDIRECTS`] hops. reqwest already drops `Authorization` on a cross-origin hop.
fn redirect_policy(config: &Config) -> reqwest::redirect::Policy {
    let endpoint = config.endpoint_url();
    let api_origin = url::Url::parse(config.base_url()).map(|url| url.origin());
    reqwest::redirect::Policy::custom(move |attempt| {
        let to = attempt.url().origin();
        let within_api = api_origin.as_ref().is_ok_and(|api| *api == to);
        let https = attempt.url().scheme() == "https";
        let shown = to.ascii_serialization();
        let is_post = attempt
            .previous()
            .first()
            .is_some_and(|first| first.as_str() == endpoint);
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!(
                "more than {MAX_REDIRECTS} redirects; the last one pointed at {shown}"
            ))
        } else if within_api || (!is_post && https) {
            attempt.follow()
        } else if is_post {
            attempt.error(format!(
                "the API redirected the request to {shown}, another origin; the request (with the \
                 input picture) is only ever sent to the configured base URL"
            ))
        } else {
            attempt.error(format!(
                "the result download was redirected to {shown}, which is not https"
            ))
        }
    })
}

/// Creates `dir` and a hidden temporary file in it, the sink that writes there and a reader that
/// follows it: done before anything is sent, so a folder that cannot be written to fails a call
/// before it costs anything.
async fn stage_in(dir: &Path) -> Result<((tempfile::NamedTempFile, Sink), ArrivingImage)> {
    let folder = dir.to_owned();
    let opened = tokio::task::spawn_blocking(move || {
        let temp = create_temp_in(&folder)?;
        let handles = temp
            .as_file()
            .try_clone()
            .and_then(|writer| Ok((writer, temp.reopen()?)));
        match handles {
            Ok((writer, reader)) => Ok((temp, writer, reader)),
            Err(source) => Err(Error::File {
                path: folder,
                action: "write the image into",
                source,
            }),
        }
    })
    .await
    .expect("creating a temporary file does not panic");
    let (temp, writer, reader) = opened?;
    let publisher = Publisher::new();
    let arriving = publisher.reader(reader);
    let sink = Sink::File {
        writes: BatchedWrites::new(writer, &publisher),
        publisher,
        dir: dir.to_owned(),
        head: Vec::new(),
        size: 0,
    };
    Ok(((temp, sink), arriving))
}

/// Fetches a generation's image into its staged file and returns it, with what the API said.
async fn fetch_staged(
    call: &Call<'_>,
    generation: Generation,
    (temp, mut sink): (tempfile::NamedTempFile, Sink),
    dir: &Path,
) -> Result<StagedImage> {
    let format = fetch(call, &generation.image, &mut sink).await?;
    Ok(StagedImage::new(
        temp,
        dir.to_owned(),
        sink.size(),
        generation.metadata(format),
    ))
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Fetches the result image into `sink` (downloaded, with retries, or decoded from base64) and
/// returns its type, detected from its first bytes.
async fn fetch(call: &Call<'_>, image: &ResultImage, sink: &mut Sink) -> Result<ImageFormat> {
    match image {
        ResultImage::Base64(b64) => {
            let bytes = decode_base64_image(b64, call.config.max_result_bytes())?;
            sink.append(&bytes)
                .await
                .map_err(|error| sink.error(error))?;
        }
        ResultImage::Url(url) => {
            if !matches!(ImageSource::parse(url), Ok(ImageSource::Url(_))) {
                return Err(Error::Decode {
                    reason: "the result url is not an http(s) URL".into(),
                    body: None,
                });
            }
            let shared = tokio::sync::Mutex::new(&mut *sink);
            retry::run(call.config.retry_policy(), call.deadline, |attempt| {
                transport::download(call, url, &shared, attempt)
            })
            .await?;
        }
    }
    sink.finish().await.map_err(|error| sink.error(error))?;
    let Some(format) = ImageFormat::detect(sink.head()) else {
        return Err(Error::Decode {
            reason: format!(
                "the result is not a PNG, JPEG, WebP or GIF image; it is {}",
                describe_non_image(sink.head())
            ),
            body: text_excerpt(sink.head(), call.key),
        });
    };
    tracing::info!(bytes = sink.size(), %format, "result image ready");
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_and_their_calls_can_cross_threads() {
        // Servers run calls on multi-threaded runtimes, which need both to be Send.
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: &T) {}
        let client = Client::new(Config::default()).unwrap();
        send_sync(&client);
        let request = EditImageRequest::new("https://example.com/a.png", "make it blue");
        send(&client.edit_image(&request));
    }
}
