//! Each model's live price, read from the provider (`GET /model/{id}?include=pricing`) when a
//! server starts and again every so often with the ETag of the last answer: what the tool
//! descriptions and `reve-mcp usage` quote, and what `--max-usd-per-day` counts an edit at
//! before it is sent. A price that cannot be read is left out; nothing fails for it.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use reve_core::PriceLookup;

use super::Jobs;

/// How often a server reads the prices again (an unchanged one costs an empty answer).
const REFRESH_EVERY: Duration = Duration::from_secs(10 * 60);

/// The prices known, per model, and whether the first read is done.
#[derive(Debug)]
pub(super) struct Prices {
    known: RwLock<HashMap<String, Known>>,
    first_read: tokio::sync::watch::Sender<FirstRead>,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            known: RwLock::default(),
            first_read: tokio::sync::watch::Sender::new(FirstRead::NotStarted),
        }
    }
}

impl Prices {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Known>> {
        self.known
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Known>> {
        self.known
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the first read under way, unless one was already.
    fn begin_first_read(&self) {
        self.first_read.send_if_modified(|state| {
            let starting = *state == FirstRead::NotStarted;
            if starting {
                *state = FirstRead::Reading;
            }
            starting
        });
    }
}

/// Where the first read of the prices is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstRead {
    NotStarted,
    Reading,
    Done,
}

#[derive(Debug, Clone)]
struct Known {
    usd_per_picture: Option<f64>,
    etag: Option<String>,
}

impl Jobs {
    /// Reads every model's price, sending the ETag of the last answer. A model whose price
    /// cannot be read now keeps the one read before, if any.
    pub async fn refresh_prices(&self) {
        self.inner.prices.begin_first_read();
        let lookups = look_up_prices(self.inner.editor.client(), |model| {
            self.known_price(model).and_then(|known| known.etag)
        });
        for (model, lookup) in lookups.await {
            match lookup {
                Ok(PriceLookup::Unchanged) => {}
                Ok(PriceLookup::Price {
                    usd_per_picture,
                    etag,
                }) => {
                    tracing::debug!(model = model.id, usd_per_picture, "read the model's price");
                    self.inner.prices.write().insert(
                        model.id.to_owned(),
                        Known {
                            usd_per_picture,
                            etag,
                        },
                    );
                }
                Err(error) => {
                    tracing::info!(model = model.id, %error, "could not read the model's price; it is left out until it can be");
                }
            }
        }
        self.inner.prices.first_read.send_replace(FirstRead::Done);
    }

    /// Waits for the first read of the prices when one is under way or about to be (a server
    /// reads them shortly after it starts); returns at once when none was started.
    pub async fn first_prices(&self) {
        let mut state = self.inner.prices.first_read.subscribe();
        let _ = state.wait_for(|state| *state != FirstRead::Reading).await;
    }

    /// Whether the first read of the prices is done (or none is coming).
    pub fn prices_read(&self) -> bool {
        *self.inner.prices.first_read.borrow() != FirstRead::Reading
    }

    /// Reads the prices after `delay` and then every [`REFRESH_EVERY`], until the process
    /// ends. The first read counts as under way from this call on, before the returned future
    /// first runs: [`Jobs::first_prices`] waits for it.
    pub fn keep_prices_fresh(&self, delay: Duration) -> impl Future<Output = ()> + Send + 'static {
        self.inner.prices.begin_first_read();
        let jobs = self.clone();
        async move {
            tokio::time::sleep(delay).await;
            jobs.refresh_forever().await;
        }
    }

    async fn refresh_forever(&self) {
        let mut reads = tokio::time::interval(REFRESH_EVERY);
        reads.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            reads.tick().await;
            self.refresh_prices().await;
        }
    }

    /// The live price of one picture of `model` in US dollars, when it was read.
    pub fn price_of(&self, model: &str) -> Option<f64> {
        self.known_price(model)?.usd_per_picture
    }

    /// Every live price read, per model.
    pub fn prices(&self) -> Vec<(String, f64)> {
        let known = self.inner.prices.read();
        let mut prices: Vec<(String, f64)> = known
            .iter()
            .filter_map(|(model, known)| Some((model.clone(), known.usd_per_picture?)))
            .collect();
        prices.sort_by(|a, b| a.0.cmp(&b.0));
        prices
    }

    fn known_price(&self, model: &str) -> Option<Known> {
        self.inner.prices.read().get(model).cloned()
    }
}

/// Every model's price, looked up at once (each sent with the ETag `etag_of` gives it).
pub(crate) async fn look_up_prices(
    client: &reve_core::Client,
    etag_of: impl Fn(&str) -> Option<String>,
) -> Vec<(&'static reve_core::Model, reve_core::Result<PriceLookup>)> {
    let lookups = reve_core::MODELS.iter().map(|model| {
        let etag = etag_of(model.id);
        async move { (*model, client.price(model.id, etag.as_deref()).await) }
    });
    futures::future::join_all(lookups).await
}
