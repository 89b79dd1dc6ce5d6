//! Results written to a file as they arrive (`Client::edit_into_dir`), and local images written
//! straight into the request body (`RequestBody::with_image_file`): what is sent, what lands on
//! disk, and what is left behind when something fails.

use std::io::{Read as _, Seek as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reve_core::{EditImageRequest, Error, ImageFormat, Phase, RequestBody};
use reve_tests::entries_under;
use reve_tests::fake::{self, FakeApi, Scenario};

use crate::common::{client, config, input_png, request};
use reve_tests::file_names;

fn body() -> RequestBody {
    RequestBody::new(&request(), u64::MAX).unwrap()
}

fn read_all(mut file: std::fs::File) -> Vec<u8> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    bytes
}

#[tokio::test]
async fn a_result_is_staged_in_a_hidden_file_and_persisted_under_its_name() {
    let fake = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new folder");
    let staged = client(config(&fake))
        .edit_into_dir(&body(), &out)
        .await
        .unwrap();

    let url = staged.metadata.url.clone().expect("url mode returns a url");
    let served = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(staged.size, served.len() as u64);
    assert_eq!(staged.metadata.format, ImageFormat::Png);
    assert_eq!(staged.dimensions().unwrap(), (40, 30));
    assert_eq!(read_all(staged.open().unwrap()), served);
    let staging = file_names(&out);
    assert_eq!(staging.len(), 1, "{staging:?}");
    assert!(
        staging[0].starts_with(".reve-") && staging[0].ends_with(".partial"),
        "{staging:?}"
    );

    let reader = staged.open().unwrap();
    let saved = staged.persist(Some("edited.jpg")).unwrap();
    assert_eq!(saved, out.join("edited.png"));
    assert_eq!(file_names(&out), ["edited.png"]);
    assert_eq!(std::fs::read(&saved).unwrap(), served);
    // A handle opened before persisting still reads the image.
    assert_eq!(read_all(reader), served);
}

#[tokio::test]
async fn a_base64_result_is_staged_too() {
    let fake = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut request = request();
    request.convert_base64_to_url = Some(false);
    let body = RequestBody::new(&request, u64::MAX).unwrap();
    let staged = client(config(&fake))
        .edit_into_dir(&body, dir.path())
        .await
        .unwrap();

    assert_eq!(staged.metadata.url, None);
    assert_eq!(fake.file_downloads(), 0);
    let saved = staged.persist(None).unwrap();
    let expected = fake::edit(&image::load_from_memory(&input_png()).unwrap(), None);
    assert_eq!(image::open(&saved).unwrap().to_rgba8(), expected);
}

#[tokio::test]
async fn a_retried_download_starts_the_file_afresh() {
    let fake = FakeApi::builder()
        .default_scenario(Scenario::TruncatedResultOnce)
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let staged = client(config(&fake))
        .edit_into_dir(&body(), dir.path())
        .await
        .unwrap();

    assert_eq!(fake.file_downloads(), 2);
    let url = staged.metadata.url.clone().unwrap();
    let served = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(staged.size, served.len() as u64);
    assert_eq!(read_all(staged.open().unwrap()), served);
}

#[tokio::test]
async fn failures_and_unsaved_results_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    for scenario in [
        Scenario::TruncatedResult,
        Scenario::ResultBytes(bytes::Bytes::from_static(b"<html>not an image</html>")),
        Scenario::HugeResultChunked { bytes: 4096 },
    ] {
        let fake = FakeApi::builder()
            .default_scenario(scenario.clone())
            .start()
            .await;
        let config = config(&fake).with_max_result_bytes(1024);
        let error = client(config)
            .edit_into_dir(&body(), dir.path())
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::Transport {
                    phase: Phase::Download,
                    ..
                } | Error::Decode { .. }
                    | Error::ResultTooLarge { .. }
            ),
            "{scenario:?}: {error:?}"
        );
        assert_eq!(
            entries_under(dir.path()),
            Vec::<std::path::PathBuf>::new(),
            "{scenario:?}"
        );
    }

    let fake = FakeApi::start().await;
    let staged = client(config(&fake))
        .edit_into_dir(&body(), dir.path())
        .await
        .unwrap();
    drop(staged);
    assert_eq!(entries_under(dir.path()), Vec::<std::path::PathBuf>::new());
}

#[tokio::test]
async fn a_folder_that_cannot_be_written_fails_before_anything_is_sent() {
    let fake = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a file");
    std::fs::write(&blocker, b"in the way").unwrap();
    let error = client(config(&fake))
        .edit_into_dir(&body(), &blocker.join("out"))
        .await
        .unwrap_err();

    assert!(
        matches!(
            error,
            Error::File {
                action: "create directory",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_local_image_is_sent_as_the_data_uri_of_its_bytes() {
    let fake = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.png");
    let jpeg = fake::sample_jpeg(40, 30);
    std::fs::write(&path, &jpeg).unwrap();
    let request = EditImageRequest::new(path.to_str().unwrap(), "Invert the colours");
    let file = std::fs::File::open(&path).unwrap();
    let body = RequestBody::with_image_file(&request, &file, &path, u64::MAX).unwrap();
    client(config(&fake)).edit(&body).await.unwrap();

    let sent = fake.generation_requests();
    let sent = sent[0].json.as_ref().expect("the body is JSON");
    assert_eq!(
        sent["image_url"],
        fake::data_uri("image/jpeg", &jpeg).as_str()
    );
    assert_eq!(sent["prompt"], "Invert the colours");
    assert_eq!(sent["model"], reve_core::edit_image::MODEL);

    let small = config(&fake).with_max_input_bytes(jpeg.len() as u64 - 1);
    let error = client(small).edit(&body).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the image is {} bytes; the limit is {} bytes",
            jpeg.len(),
            jpeg.len() - 1
        )
    );
    assert_eq!(fake.generation_requests().len(), 1);
}

/// A request sending a picture of noise, whose result (its inverse) is about 4 MB: several of
/// the file writes a reader of the arriving image can follow.
fn noisy_body() -> RequestBody {
    let request = EditImageRequest::new(
        fake::data_uri("image/png", &fake::noise_png(1024)),
        "Invert the colours",
    );
    RequestBody::new(&request, u64::MAX).unwrap()
}

/// A fake whose result trickles in, a folder to stage it in, and a flag to set once the download
/// is over.
async fn slow_download() -> (FakeApi, tempfile::TempDir, Arc<AtomicBool>) {
    let fake = FakeApi::builder()
        .default_scenario(Scenario::SlowBody {
            chunk_delay: Duration::from_millis(100),
        })
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    (fake, dir, Arc::new(AtomicBool::new(false)))
}

#[tokio::test]
async fn the_arriving_image_is_read_while_it_downloads_and_ends_as_the_saved_file() {
    let (fake, dir, downloaded) = slow_download().await;
    let (first_read, first_read_done) = tokio::sync::oneshot::channel();
    let mut reading = None;
    let staged = client(config(&fake))
        .edit_into_dir_reporting(&noisy_body(), dir.path(), |_, arriving| {
            let downloaded = downloaded.clone();
            reading = Some(std::thread::spawn(move || {
                let mut arriving = arriving;
                let mut first = [0; 8];
                arriving.read_exact(&mut first).unwrap();
                first_read.send(downloaded.load(Ordering::SeqCst)).unwrap();
                let mut all = first.to_vec();
                arriving.read_to_end(&mut all).unwrap();
                all
            }));
            async {}
        })
        .await
        .unwrap();
    downloaded.store(true, Ordering::SeqCst);

    assert!(
        !first_read_done.await.unwrap(),
        "the first bytes were read only after the download"
    );
    let read = reading.unwrap().join().unwrap();
    assert!(read.len() > 3 << 20, "{} bytes", read.len());
    assert_eq!(read, read_all(staged.open().unwrap()));
}

/// A reader of the arriving image learns its size from the server's `Content-Length`, before
/// the bytes are there: a preview decides from it whether to decode what is arriving.
#[tokio::test]
async fn the_arriving_image_tells_its_announced_size_before_the_download_ends() {
    let (fake, dir, downloaded) = slow_download().await;
    let (told, size_told) = tokio::sync::oneshot::channel();
    let staged = client(config(&fake))
        .edit_into_dir_reporting(&noisy_body(), dir.path(), |_, mut arriving| {
            let downloaded = downloaded.clone();
            std::thread::spawn(move || {
                let mut first = [0; 8];
                arriving.read_exact(&mut first).unwrap();
                let size = arriving.seek(std::io::SeekFrom::End(0)).unwrap();
                told.send((size, downloaded.load(Ordering::SeqCst)))
                    .unwrap();
            });
            async {}
        })
        .await
        .unwrap();
    downloaded.store(true, Ordering::SeqCst);

    let (size, after_the_download) = size_told.await.unwrap();
    assert!(
        !after_the_download,
        "the size was told only after the download"
    );
    assert_eq!(size, staged.size);
}

#[tokio::test]
async fn a_download_that_starts_over_fails_the_arriving_image_not_the_staged_one() {
    let fake = FakeApi::builder()
        .default_scenario(Scenario::TruncatedResultOnce)
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut reading = None;
    let staged = client(config(&fake))
        .edit_into_dir_reporting(&noisy_body(), dir.path(), |_, mut arriving| {
            reading = Some(std::thread::spawn(move || {
                arriving.read_to_end(&mut Vec::new()).unwrap_err()
            }));
            async {}
        })
        .await
        .unwrap();

    assert_eq!(fake.file_downloads(), 2);
    let error = reading.unwrap().join().unwrap();
    assert!(error.to_string().contains("started over"), "{error}");
    let served = reqwest::get(staged.metadata.url.clone().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(read_all(staged.open().unwrap()), served);
}
