//! Random-number streams: one [`ChaCha8Rng`] per (entity, purpose[, epoch]), all derived from
//! the run's master seed.
//!
//! # Contract
//! - A stream is identified by a [`StreamKey`] = (entity kind, entity index, purpose, epoch).
//!   Its draws depend only on the master seed and that key: never on which other streams
//!   exist, were created or were used, nor on the order of creation. So adding a host does not
//!   change another host's draws, and runs are reproducible at any thread count.
//! - Every stream of a run shares one 256-bit ChaCha key derived from the master seed; the
//!   [`StreamKey`] packs injectively into ChaCha's 64-bit stream number, so different keys
//!   select different (independent) ChaCha keystreams.
//! - Key derivation (fixed here on purpose, so it cannot change with a dependency bump): the
//!   32 key bytes are four SplitMix64 outputs started from `master_seed`, each written
//!   little-endian. SplitMix64: `state += 0x9E3779B97F4A7C15; z = state;
//!   z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9; z = (z ^ z >> 27) * 0x94D049BB133111EB;
//!   z ^ z >> 31`.
//! - Never `thread_rng`, `SmallRng` or OS seeding anywhere in the model.
//!
//! The `epoch` field lets the model re-key a stream per simulated day (or any period), so a
//! change in how many draws day 3 consumes does not shift day 4's draws.
//!
//! [`StreamWindow`] reads the same keystream as [`ChaCha8Rng`] from a given word position,
//! one 16-word block at a time. The model opens one such window per event (a few dozen
//! words), where `ChaCha8Rng` would set up its state and compute four blocks; the words
//! drawn are identical (tested against `rand_chacha`), so which of the two reads a stream
//! never changes a result.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Identity of one random stream. Packs injectively into 64 bits:
///
/// | bits    | field          | width |
/// |---------|----------------|-------|
/// | 63..56  | `entity_kind`  | u8    |
/// | 55..24  | `entity_index` | u32   |
/// | 23..16  | `purpose`      | u8    |
/// | 15..0   | `epoch`        | u16   |
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub entity_kind: u8,
    pub entity_index: u32,
    pub purpose: u8,
    pub epoch: u16,
}

impl StreamKey {
    pub const fn new(entity_kind: u8, entity_index: u32, purpose: u8, epoch: u16) -> Self {
        StreamKey { entity_kind, entity_index, purpose, epoch }
    }

    /// The same key with another epoch (e.g. the simulated day).
    pub const fn with_epoch(self, epoch: u16) -> Self {
        StreamKey { epoch, ..self }
    }

    /// The ChaCha stream number (see the bit layout on the type).
    pub const fn stream_id(self) -> u64 {
        ((self.entity_kind as u64) << 56)
            | ((self.entity_index as u64) << 24)
            | ((self.purpose as u64) << 16)
            | self.epoch as u64
    }

    /// Inverse of [`StreamKey::stream_id`].
    pub const fn from_stream_id(id: u64) -> Self {
        StreamKey {
            entity_kind: (id >> 56) as u8,
            entity_index: (id >> 24) as u32,
            purpose: (id >> 16) as u8,
            epoch: id as u16,
        }
    }
}

/// Factory of the run's random streams. Cheap to clone and to share across threads.
#[derive(Clone, Debug)]
pub struct RngStreams {
    master_seed: u64,
    key: [u8; 32],
}

impl RngStreams {
    pub fn new(master_seed: u64) -> Self {
        let mut state = master_seed;
        let mut key = [0u8; 32];
        for chunk in key.chunks_exact_mut(8) {
            chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        RngStreams { master_seed, key }
    }

    /// A fresh generator positioned at the start of `key`'s stream. Calling it twice with the
    /// same key gives two generators producing the same sequence.
    pub fn stream(&self, key: StreamKey) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(key.stream_id());
        rng
    }

    /// A generator reading `key`'s stream from word `word_pos` on: the same words as
    /// `stream(key)` after `set_word_pos(word_pos)`, computed a block at a time.
    pub fn window(&self, key: StreamKey, word_pos: u64) -> StreamWindow {
        StreamWindow::new(&self.key, key.stream_id(), word_pos)
    }

    pub fn master_seed(&self) -> u64 {
        self.master_seed
    }
}

/// ChaCha8 with a 64-bit block counter and a 64-bit stream number (the layout of
/// `rand_chacha`), buffering one block.
#[derive(Clone, Debug)]
pub struct StreamWindow {
    /// Key words, then the block counter (low, high) and the stream (low, high).
    input: [u32; 16],
    block: [u32; 16],
    /// Next unread word of `block`; 16 when the block is used up.
    index: usize,
}

const CHACHA_CONSTANTS: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

impl StreamWindow {
    fn new(key: &[u8; 32], stream: u64, word_pos: u64) -> StreamWindow {
        let mut input = [0u32; 16];
        input[..4].copy_from_slice(&CHACHA_CONSTANTS);
        for (w, chunk) in input[4..12].iter_mut().zip(key.chunks_exact(4)) {
            *w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        let block = word_pos / 16;
        input[12] = block as u32;
        input[13] = (block >> 32) as u32;
        input[14] = stream as u32;
        input[15] = (stream >> 32) as u32;
        let mut w = StreamWindow { input, block: [0; 16], index: 16 };
        let skip = (word_pos % 16) as usize;
        if skip > 0 {
            w.refill();
            w.index = skip;
        }
        w
    }

    /// Computes the block at the counter and advances the counter.
    fn refill(&mut self) {
        #[inline(always)]
        fn quarter(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
            x[a] = x[a].wrapping_add(x[b]);
            x[d] = (x[d] ^ x[a]).rotate_left(16);
            x[c] = x[c].wrapping_add(x[d]);
            x[b] = (x[b] ^ x[c]).rotate_left(12);
            x[a] = x[a].wrapping_add(x[b]);
            x[d] = (x[d] ^ x[a]).rotate_left(8);
            x[c] = x[c].wrapping_add(x[d]);
            x[b] = (x[b] ^ x[c]).rotate_left(7);
        }
        let mut x = self.input;
        // ChaCha8: four double rounds.
        for _ in 0..4 {
            quarter(&mut x, 0, 4, 8, 12);
            quarter(&mut x, 1, 5, 9, 13);
            quarter(&mut x, 2, 6, 10, 14);
            quarter(&mut x, 3, 7, 11, 15);
            quarter(&mut x, 0, 5, 10, 15);
            quarter(&mut x, 1, 6, 11, 12);
            quarter(&mut x, 2, 7, 8, 13);
            quarter(&mut x, 3, 4, 9, 14);
        }
        for (out, (xi, ii)) in self.block.iter_mut().zip(x.iter().zip(&self.input)) {
            *out = xi.wrapping_add(*ii);
        }
        let counter = (u64::from(self.input[13]) << 32 | u64::from(self.input[12])).wrapping_add(1);
        self.input[12] = counter as u32;
        self.input[13] = (counter >> 32) as u32;
        self.index = 0;
    }

    #[inline]
    fn word(&mut self) -> u32 {
        if self.index >= 16 {
            self.refill();
        }
        let w = self.block[self.index];
        self.index += 1;
        w
    }
}

impl rand::TryRng for StreamWindow {
    type Error = std::convert::Infallible;

    #[inline]
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.word())
    }

    /// Two consecutive words, low first (as `rand_chacha` reads them).
    #[inline]
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let lo = self.word();
        let hi = self.word();
        Ok(u64::from(hi) << 32 | u64::from(lo))
    }

    /// Whole words little-endian; the rest of a partly used last word is discarded.
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(4) {
            let w = self.word().to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
        Ok(())
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_id_round_trips_and_is_laid_out_as_documented() {
        let k = StreamKey::new(0xAB, 0x1234_5678, 0xCD, 0xEF01);
        assert_eq!(k.stream_id(), 0xAB12_3456_78CD_EF01);
        assert_eq!(StreamKey::from_stream_id(k.stream_id()), k);
        assert_eq!(k.with_epoch(7).epoch, 7);
    }

    /// The window reads exactly `ChaCha8Rng`'s words, from any position, through every
    /// way of drawing (words, pairs across block edges, byte fills, distributions).
    #[test]
    fn window_reads_the_chacha8_keystream() {
        use rand::{Rng, RngExt};
        let mut pick = ChaCha8Rng::seed_from_u64(11);
        for case in 0..400u64 {
            let streams = RngStreams::new(pick.random());
            let key = StreamKey::from_stream_id(pick.random());
            let pos: u64 = match case % 4 {
                0 => pick.random_range(0..64),
                1 => pick.random_range(0..1 << 20) * 128,
                2 => pick.random::<u64>() >> 4 << 4,
                _ => pick.random_range(0..u64::MAX / 32),
            };
            let mut want = streams.stream(key);
            want.set_word_pos(u128::from(pos));
            let mut got = streams.window(key, pos);
            for _ in 0..40 {
                match pick.random_range(0..5) {
                    0 => assert_eq!(got.next_u32(), want.next_u32(), "case {case}"),
                    1 => assert_eq!(got.next_u64(), want.next_u64(), "case {case}"),
                    2 => {
                        let n = pick.random_range(0..23);
                        let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
                        got.fill_bytes(&mut a);
                        want.fill_bytes(&mut b);
                        assert_eq!(a, b, "case {case}");
                    }
                    3 => assert_eq!(got.random::<f64>().to_bits(), want.random::<f64>().to_bits()),
                    _ => assert_eq!(got.random_range(0..1000u32), want.random_range(0..1000u32)),
                }
            }
        }
    }

    #[test]
    fn splitmix_reference_value() {
        // First output of SplitMix64 seeded with 0 (reference implementation by S. Vigna).
        let mut s = 0;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
    }
}
