//! The SA table: one entry per host pair, keyed by [`super::pair_key`], that knows how much
//! memory it held at its largest and can fetch a key's entry into the cache ahead of use.
//! (The NLB pins use it too, keyed by client and cluster.)
//!
//! Contract:
//! - An open-addressing table with linear probing, keys in one array and values in
//!   another at the same index: a lookup scans keys from the key's home slot (eight to a
//!   cache line) and reads one value, and [`PairTable::prefetch`] can ask the CPU for the
//!   home slot's lines (its key's, and the one or two its value spans) before the lookup,
//!   which std's `HashMap` cannot (where an entry sits is only known after reading its
//!   control bytes). The event loop prefetches the pair of the next SA timer while it
//!   handles the current event.
//! - Removal shifts the following entries of the probe run back (no tombstones), so a table
//!   whose pairs come and go all day keeps the size its live pairs need; std's table
//!   doubled under that churn (193 bytes per live SA on the full-campus day instead of 96).
//! - 8 shards by the key's hash, each grown on its own (doubling at 3/4 full): a growth
//!   holds one shard twice for a moment, not the whole table. Not more shards: a
//!   campus-sized shard must stay well above [`crate::huge_pages::THRESHOLD`] to be backed
//!   by huge pages (64 shards of 2.4 MB made the full-campus day 8% slower).
//! - Iteration order is the slots' order, never used for output (callers sort).
//! - [`PairTable::bytes_peak`] is the slots' memory at its largest (shards never shrink).
//! - The key `u64::MAX` marks an empty slot: no pair of two host ids below `u32::MAX` has it.

use crate::engine::{prefetch, prefetch_span};

/// Shards of the table: a power of two.
const SHARD_BITS: u32 = 3;
const SHARDS: usize = 1 << SHARD_BITS;
/// Slots of a shard's first allocation.
const MIN_SLOTS: usize = 8;
const EMPTY: u64 = u64::MAX;

pub struct PairTable<V> {
    shards: Vec<Shard<V>>,
}

/// Keys and values in two arrays: a probe run scans keys (eight to a cache line) and reads
/// one value.
struct Shard<V> {
    /// A power of two of keys (or none before the first insert); [`EMPTY`] where free.
    keys: Vec<u64>,
    values: Vec<V>,
    len: usize,
}

impl<V> Default for PairTable<V> {
    fn default() -> Self {
        PairTable { shards: (0..SHARDS).map(|_| Shard { keys: Vec::new(), values: Vec::new(), len: 0 }).collect() }
    }
}

/// Fibonacci hashing: the product's top bits depend on every bit of the key. The top
/// `SHARD_BITS` pick the shard, the next ones the home slot in it.
#[inline]
fn hash(key: u64) -> u64 {
    key.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[inline]
fn shard_of(key: u64) -> usize {
    (hash(key) >> (64 - SHARD_BITS)) as usize
}

impl<V: Copy + Default> Shard<V> {
    #[inline]
    fn home(&self, key: u64) -> usize {
        // The hash's bits below the shard's, as many as the slots' log2. An empty shard has
        // no slot to index (callers check `keys`); its "index" is then out of range.
        let shift = 64 - self.keys.len().trailing_zeros();
        (hash(key) << SHARD_BITS).checked_shr(shift).unwrap_or(0) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        self.keys.len() - 1
    }

    /// The slot holding `key`, if any.
    #[inline]
    fn find(&self, key: u64) -> Option<usize> {
        if self.keys.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = self.home(key);
        loop {
            let k = self.keys[i];
            if k == key {
                return Some(i);
            }
            if k == EMPTY {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Puts a key known to be absent into the first empty slot of its run.
    fn place(&mut self, key: u64, value: V) {
        let mask = self.mask();
        let mut i = self.home(key);
        while self.keys[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.keys[i] = key;
        self.values[i] = value;
        self.len += 1;
    }

    /// Doubles the slots (or makes the first ones) and re-places every entry.
    fn grow(&mut self) {
        let n = (self.keys.len() * 2).max(MIN_SLOTS);
        let keys = std::mem::replace(&mut self.keys, vec![EMPTY; n]);
        let values = std::mem::replace(&mut self.values, vec![V::default(); n]);
        self.len = 0;
        for (k, v) in keys.into_iter().zip(values).filter(|&(k, _)| k != EMPTY) {
            self.place(k, v);
        }
    }

    /// Empties slot `hole` and shifts back the entries after it that may move closer to
    /// their home, so that every entry stays reachable from its home without a gap.
    fn vacate(&mut self, mut hole: usize) {
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let k = self.keys[j];
            if k == EMPTY {
                break;
            }
            // The entry at `j` may fill the hole if the hole lies on its probe path, i.e.
            // between its home and `j` (cyclically).
            let home = self.home(k);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.keys[hole] = k;
                self.values[hole] = self.values[j];
                hole = j;
            }
        }
        self.keys[hole] = EMPTY;
        self.len -= 1;
    }
}

impl<V: Copy + Default> PairTable<V> {
    #[inline]
    fn shard(&self, key: u64) -> &Shard<V> {
        &self.shards[shard_of(key)]
    }

    pub fn get(&self, key: u64) -> Option<&V> {
        let s = self.shard(key);
        s.find(key).map(|i| &s.values[i])
    }

    pub fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        let s = &mut self.shards[shard_of(key)];
        s.find(key).map(|i| &mut s.values[i])
    }

    pub fn remove(&mut self, key: u64) -> Option<V> {
        let s = &mut self.shards[shard_of(key)];
        let i = s.find(key)?;
        let value = s.values[i];
        s.vacate(i);
        Some(value)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len).sum()
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.shards
            .iter()
            .flat_map(|s| s.keys.iter().zip(&s.values).filter(|(k, _)| **k != EMPTY).map(|(k, v)| (*k, v)))
    }

    /// Inserts or replaces the entry of `key`.
    pub fn insert(&mut self, key: u64, value: V) {
        assert_ne!(key, EMPTY, "the empty-slot key is not a pair");
        let s = &mut self.shards[shard_of(key)];
        if let Some(i) = s.find(key) {
            s.values[i] = value;
            return;
        }
        // At most 3/4 full: linear probing's runs stay short (2.5 slots per hit at 3/4).
        if (s.len + 1) * 4 > s.keys.len() * 3 {
            s.grow();
        }
        s.place(key, value);
    }

    /// Asks the CPU for the cache lines of `key`'s home slot (its key and its value's),
    /// where a lookup of it starts and usually ends, without waiting for them (a hint: no
    /// effect on what anything computes).
    #[inline]
    pub fn prefetch(&self, key: u64) {
        let s = self.shard(key);
        let home = s.home(key);
        if let (Some(k), Some(v)) = (s.keys.get(home), s.values.get(home)) {
            prefetch(k);
            prefetch_span(v);
        }
    }

    /// Bytes the table held at its largest (every shard at its largest: shards never
    /// shrink, so they are all at their largest at once).
    pub fn bytes_peak(&self) -> u64 {
        let slot = 8 + std::mem::size_of::<V>();
        self.shards.iter().map(|s| (s.keys.len() * slot) as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Pairs of hosts of a 272,555-host campus, as `pair_key` makes them, from a xorshift
    /// stream.
    fn pairs(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            let mut host = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % 272_555
            };
            let (a, b) = (host(), host());
            (a.min(b) << 32) | a.max(b)
        }
    }

    /// Every entry is reachable from its home slot without crossing an empty one (what
    /// lookups rely on), and `len` counts the entries.
    fn check_runs<V: Copy + Default>(t: &PairTable<V>) {
        for (n, s) in t.shards.iter().enumerate() {
            let mask = s.keys.len().wrapping_sub(1);
            let mut count = 0;
            for (i, &key) in s.keys.iter().enumerate() {
                if key == EMPTY {
                    continue;
                }
                count += 1;
                assert_eq!(shard_of(key), n, "key in the wrong shard");
                let mut j = s.home(key);
                while j != i {
                    assert_ne!(s.keys[j], EMPTY, "a gap between key {key:#x}'s home and its slot");
                    j = (j + 1) & mask;
                }
            }
            assert_eq!(count, s.len);
            assert_eq!(s.values.len(), s.keys.len());
            assert!(s.len * 4 <= s.keys.len() * 3, "shard over 3/4 full");
        }
    }

    /// Pairs arriving and leaving all day with a steady number alive: the table keeps the
    /// size its live entries need (std's `HashMap`, whose removals leave tombstones,
    /// doubled under this churn at this fill).
    #[test]
    fn churn_at_a_steady_population_does_not_grow_the_table() {
        let live = 65_000;
        let mut pair = pairs(12_345);
        let mut table = PairTable::default();
        let mut alive = std::collections::VecDeque::new();
        for i in 0..live {
            let k = pair();
            table.insert(k, i);
            alive.push_back(k);
        }
        let settled = table.bytes_peak();
        for i in live..live * 20 {
            table.remove(alive.pop_front().expect("full"));
            let k = pair();
            table.insert(k, i);
            alive.push_back(k);
        }
        assert_eq!(table.bytes_peak(), settled, "the table grew under churn");
        check_runs(&table);
        let count = table.iter().count();
        assert!(count <= live as usize && count > live as usize * 99 / 100, "{count} entries");
        for &k in alive.iter().rev().take(1000) {
            assert!(table.get(k).is_some(), "a live pair survived the churn");
        }
    }

    /// Real growth still grows it, by doubling shards at 3/4 full.
    #[test]
    fn more_live_entries_grow_the_table() {
        let mut table = PairTable::default();
        table.insert(1, 0u64);
        // A key and a value per slot.
        let slot = 8 + 8;
        assert_eq!(table.bytes_peak(), MIN_SLOTS as u64 * slot, "one shard's first slots");
        for k in 0..150_000u64 {
            table.insert(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), k);
        }
        assert_eq!(table.len(), 150_001);
        // About 18,750 per shard: more than 3/4 of 16,384 slots, less than 3/4 of 32,768.
        assert_eq!(table.bytes_peak(), SHARDS as u64 * 32_768 * slot);
        check_runs(&table);
    }

    /// Pair keys spread evenly over the shards (no shard twice another's load, which would
    /// make its growth, and its transient copy, the table's), and lookups stay short.
    #[test]
    fn pair_keys_spread_evenly_and_probe_runs_stay_short() {
        let mut load = [0usize; SHARDS];
        for a in 0..2_000u64 {
            for b in (a + 1..2_000).step_by(7) {
                load[shard_of((a << 32) | b)] += 1;
            }
        }
        let mean = load.iter().sum::<usize>() / SHARDS;
        let (min, max) = (load.iter().min().copied(), load.iter().max().copied());
        assert!(min > Some(mean * 9 / 10) && max < Some(mean * 11 / 10), "{min:?}..{max:?} around {mean}");

        // Just under 3/4 full: a hit probes ~2.5 slots on average under uniform hashing.
        let mut table = PairTable::default();
        let mut pair = pairs(99);
        let keys: Vec<u64> = (0..SHARDS * 3 * 8_192 / 4 - 2_000).map(|_| pair()).collect();
        for &k in &keys {
            table.insert(k, ());
        }
        let probes: usize = keys
            .iter()
            .map(|&k| {
                let s = table.shard(k);
                (s.find(k).expect("inserted") + s.keys.len() - s.home(k)) % s.keys.len() + 1
            })
            .sum();
        let mean = probes as f64 / keys.len() as f64;
        assert!(mean < 3.0, "{mean} slots probed per hit");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u32),
        Remove(u64),
        Get(u64),
    }

    /// Keys from a small range of a few hosts: long probe runs, wrap-around at the end of
    /// a shard, and removals in the middle of runs.
    fn op() -> impl Strategy<Value = Op> {
        let key = (0u64..40, 0u64..40).prop_map(|(a, b)| (a << 32) | b);
        prop_oneof![
            (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            key.clone().prop_map(Op::Remove),
            key.prop_map(Op::Get),
        ]
    }

    proptest! {
        /// The table answers every operation as a `HashMap` does.
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec(op(), 1..600)) {
            let mut table = PairTable::default();
            let mut model = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        table.insert(k, v);
                        model.insert(k, v);
                    }
                    Op::Remove(k) => prop_assert_eq!(table.remove(k), model.remove(&k)),
                    Op::Get(k) => prop_assert_eq!(table.get(k), model.get(&k)),
                }
            }
            check_runs(&table);
            let mut all: Vec<(u64, u32)> = table.iter().map(|(k, &v)| (k, v)).collect();
            all.sort_unstable();
            let mut expected: Vec<(u64, u32)> = model.into_iter().collect();
            expected.sort_unstable();
            prop_assert_eq!(all, expected);
        }
    }
}
