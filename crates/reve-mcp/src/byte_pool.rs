//! A bound on bytes held at once, shared by whoever holds them: request bodies over HTTP,
//! request bodies being built and sent, and preview pixels each have one.

use std::sync::Arc;

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// Room for a number of bytes, counted in KiB so that gigabytes fit a semaphore's `u32`
/// permits. A reservation larger than the whole room takes all of it, so it still gets in,
/// alone, rather than waiting for ever.
#[derive(Debug)]
pub struct BytePool {
    room_kib: Arc<Semaphore>,
    capacity_kib: u32,
}

impl BytePool {
    pub fn new(bytes: u64) -> Self {
        let capacity_kib = u32::try_from(bytes / 1024).map_or(u32::MAX, |kib| kib.max(1));
        Self {
            room_kib: Arc::new(Semaphore::new(capacity_kib as usize)),
            capacity_kib,
        }
    }

    /// Waits until `bytes` fit beside what is held, and holds them until the permit is dropped.
    pub fn reserve(
        &self,
        bytes: u64,
    ) -> impl Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + use<> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.capacity_kib);
        self.room_kib.clone().acquire_many_owned(kib)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_share_the_room_and_an_oversized_one_takes_all_of_it() {
        let budget = BytePool::new(10 * 1024);
        let first = budget.reserve(6 * 1024).await.unwrap();
        assert!(futures::FutureExt::now_or_never(budget.reserve(6 * 1024)).is_none());
        drop(first);
        let whole = budget.reserve(1 << 40).await.unwrap();
        assert_eq!(whole.num_permits(), 10);
    }
}
