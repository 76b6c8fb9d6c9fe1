//! Seeds: a run has one (`--seed`), and everything random in it (a scenario's faults, a
//! client's drops, serial noise) draws from a seed derived from it, so one number
//! replays a run.

use sha2::{Digest, Sha256};

/// A seed of its own for `label` (a scenario, a client and direction), from the run's
/// seed. SHA-256 rather than std's hasher, whose output may change between Rust
/// releases: a seed printed today must replay the same faults with the next toolchain.
pub fn derive_seed(seed: u64, label: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(label.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_are_fixed_for_good() {
        // SHA-256 of the seed's little-endian bytes and the label, first eight bytes.
        assert_eq!(derive_seed(42, "phone c2b"), 10_841_334_252_436_824_190);
        assert_ne!(derive_seed(42, "phone c2b"), derive_seed(42, "phone b2c"));
        assert_ne!(derive_seed(42, "phone c2b"), derive_seed(43, "phone c2b"));
    }
}
