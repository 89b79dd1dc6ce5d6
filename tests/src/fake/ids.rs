//! Identifiers shaped like the real ones (`requestId` UUIDs, `rsid-` request
//! ids, CDN file names), deterministic per fake so two runs see the same ids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub(crate) struct Ids {
    next: AtomicU64,
}

impl Ids {
    /// 128 bits that look random and never repeat within one fake.
    fn next_bits(&self) -> u128 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (u128::from(splitmix64(n)) << 64) | u128::from(splitmix64(!n))
    }

    /// A version-4-shaped UUID, as NestJS error bodies carry in `requestId`.
    pub(crate) fn uuid(&self) -> String {
        format_uuid(self.next_bits())
    }

    /// `rsid-` and 32 hex digits, as in the published example's `request_id`.
    pub(crate) fn rsid(&self) -> String {
        format!("rsid-{:032x}", self.next_bits())
    }

    /// An inference id, shaped like the documented example's (`V1StGXR8Z5jdHi6BmyT8k`: 21
    /// URL-safe characters).
    pub(crate) fn inference_id(&self) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        let mut bits = self.next_bits();
        (0..21)
            .map(|_| {
                let character = ALPHABET[(bits & 63) as usize] as char;
                bits >>= 6;
                character
            })
            .collect()
    }

    /// `<unix millis>-<uuid>.png`, the shape of the example's CDN file name.
    pub(crate) fn file_name(&self) -> String {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis());
        format!("{millis}-{}.png", self.uuid())
    }
}

fn format_uuid(bits: u128) -> String {
    let bits = (bits & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Sebastiano Vigna's SplitMix64 finaliser: a bijection, so distinct counters
/// give distinct ids.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_shaped_and_distinct() {
        let ids = Ids::default();
        let first = ids.uuid();
        let second = ids.uuid();
        assert_ne!(first, second);
        let groups: Vec<&str> = first.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'));
        assert!(matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
    }

    #[test]
    fn rsid_matches_the_example_shape() {
        let rsid = Ids::default().rsid();
        let hex = rsid.strip_prefix("rsid-").unwrap();
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
