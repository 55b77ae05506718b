//! A small seeded generator (SplitMix64): the same seed gives the same installation on
//! every platform and every version of our dependencies.

/// The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5eed_5a4d_b0c5_0001)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A number in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi.saturating_sub(lo)).unwrap_or(0);
        lo.saturating_add_unsigned(self.below(span.saturating_add(1)))
    }

    /// A generated-name suffix like `x7k2p`.
    pub(crate) fn suffix(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| SAFE[self.below(SAFE.len() as u64) as usize] as char)
            .collect()
    }

    pub(crate) fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len + 16);
        while s.len() < len {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(len);
        s
    }

    /// A version 4 UUID.
    pub(crate) fn uid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-4{}-a{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_shapes() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert_eq!(a.suffix(5), b.suffix(5));
        let uid = a.uid();
        assert_eq!(uid, b.uid());
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        assert_ne!(Rng::new(8).next_u64(), Rng::new(7).next_u64());
        for _ in 0..100 {
            let r = a.range(-3, 3);
            assert!((-3..=3).contains(&r));
        }
    }
}
