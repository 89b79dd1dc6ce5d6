//! Everything the fake's handlers share: configuration, the scenario queue,
//! stored files and what has been recorded.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::delivery::Delivery;
use super::edit::ResultFormat;
use super::ids::Ids;
use super::ledger::Ledger;
use super::record::{Counters, RecordedRequest};
use super::scenario::Scenario;

/// Settings fixed when the fake starts.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) api_key: String,
    pub(crate) latency: Duration,
    pub(crate) result_size: Option<(u32, u32)>,
    pub(crate) result_format: ResultFormat,
    /// Returned as the result of every success instead of an edit of the input.
    pub(crate) canned_result: Option<Bytes>,
    pub(crate) max_body_bytes: usize,
    /// How long after its request a charge shows in `/v2/logs`.
    pub(crate) log_delay: Duration,
    /// Requests `/v2/logs` answers per minute before a 429.
    pub(crate) logs_requests_per_window: usize,
}

/// A download the fake can serve under `/files/`.
#[derive(Debug, Clone)]
pub(crate) enum StoredFile {
    Image {
        bytes: Bytes,
        content_type: &'static str,
        delivery: Delivery,
    },
    Huge {
        len: u64,
        declare_length: bool,
    },
    /// A 302 to this location, as CDNs answer.
    Redirect {
        location: String,
    },
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) options: Options,
    pub(crate) base_url: String,
    pub(crate) ids: Ids,
    pub(crate) http: reqwest::Client,
    scenarios: Mutex<Scenarios>,
    requests: Mutex<Vec<RecordedRequest>>,
    files: Mutex<HashMap<String, StoredFile>>,
    inputs: Mutex<HashMap<String, (Bytes, String)>>,
    counters: watch::Sender<Counters>,
    ledger: Mutex<Ledger>,
    /// Whether `/model/{id}` answers (a 503 otherwise).
    pricing_available: AtomicBool,
    /// What the published price is multiplied by, in thousandths: a price change.
    price_permille: AtomicU64,
}

#[derive(Debug)]
struct Scenarios {
    queue: VecDeque<Scenario>,
    default: Scenario,
}

/// A poisoned lock only means another test thread panicked; the data is
/// still what was recorded, so keep going.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(
        options: Options,
        base_url: String,
        default: Scenario,
        http: reqwest::Client,
    ) -> Self {
        Self {
            options,
            base_url,
            ids: Ids::default(),
            http,
            scenarios: Mutex::new(Scenarios {
                queue: VecDeque::new(),
                default,
            }),
            requests: Mutex::default(),
            files: Mutex::default(),
            inputs: Mutex::default(),
            counters: watch::Sender::new(Counters::default()),
            ledger: Mutex::default(),
            pricing_available: AtomicBool::new(true),
            price_permille: AtomicU64::new(1000),
        }
    }

    pub(crate) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.ledger)
    }

    pub(crate) fn pricing_available(&self) -> bool {
        self.pricing_available.load(Ordering::SeqCst)
    }

    pub(crate) fn set_pricing_available(&self, available: bool) {
        self.pricing_available.store(available, Ordering::SeqCst);
    }

    /// What the published price is multiplied by.
    pub(crate) fn price_factor(&self) -> f64 {
        self.price_permille.load(Ordering::SeqCst) as f64 / 1000.0
    }

    pub(crate) fn set_price_factor(&self, factor: f64) {
        self.price_permille
            .store((factor * 1000.0).round() as u64, Ordering::SeqCst);
    }

    pub(crate) fn push(&self, scenario: Scenario) {
        lock(&self.scenarios).queue.push_back(scenario);
    }

    pub(crate) fn set_default(&self, scenario: Scenario) {
        lock(&self.scenarios).default = scenario;
    }

    pub(crate) fn next_scenario(&self) -> Scenario {
        let mut scenarios = lock(&self.scenarios);
        scenarios
            .queue
            .pop_front()
            .unwrap_or_else(|| scenarios.default.clone())
    }

    pub(crate) fn record(&self, request: RecordedRequest, generation: bool, download: bool) {
        lock(&self.requests).push(request);
        self.counters.send_modify(|counters| {
            counters.requests += 1;
            counters.generation_attempts += usize::from(generation);
            counters.file_downloads += usize::from(download);
        });
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    /// One more generation request is being answered (`true`), or one fewer.
    pub(crate) fn count_in_flight(&self, started: bool) {
        self.counters.send_modify(|counters| {
            if started {
                counters.generations_in_flight += 1;
                counters.most_generations_in_flight = counters
                    .most_generations_in_flight
                    .max(counters.generations_in_flight);
            } else {
                counters.generations_in_flight -= 1;
            }
        });
    }

    pub(crate) fn count_cancelled(&self) {
        self.counters
            .send_modify(|counters| counters.cancelled_requests += 1);
    }

    pub(crate) fn counters(&self) -> Counters {
        *self.counters.borrow()
    }

    pub(crate) fn watch_counters(&self) -> watch::Receiver<Counters> {
        self.counters.subscribe()
    }

    /// Stores a download and returns its public URL.
    pub(crate) fn store_file(&self, file: StoredFile) -> String {
        let name = self.ids.file_name();
        lock(&self.files).insert(name.clone(), file);
        self.file_url(&name)
    }

    /// The URL a file of this name would have, stored or not.
    pub(crate) fn file_url(&self, name: &str) -> String {
        format!("{}/files/{name}", self.base_url)
    }

    /// The file to serve for one download; a [`Delivery::TruncatedOnce`]
    /// file is served that way once and whole from then on.
    pub(crate) fn file(&self, name: &str) -> Option<StoredFile> {
        let mut files = lock(&self.files);
        let file = files.get_mut(name)?;
        let served = file.clone();
        if let StoredFile::Image { delivery, .. } = file
            && *delivery == Delivery::TruncatedOnce
        {
            *delivery = Delivery::Whole;
        }
        Some(served)
    }

    pub(crate) fn store_input(&self, bytes: Bytes, content_type: String) -> String {
        let mut inputs = lock(&self.inputs);
        let name = format!("input-{}", inputs.len());
        inputs.insert(name.clone(), (bytes, content_type));
        format!("{}/inputs/{name}", self.base_url)
    }

    pub(crate) fn input(&self, name: &str) -> Option<(Bytes, String)> {
        lock(&self.inputs).get(name).cloned()
    }
}
