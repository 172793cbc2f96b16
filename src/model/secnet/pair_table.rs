//! The SA table: one entry per host pair, keyed by [`super::pair_key`], that knows how much
//! memory it held at its largest.
//!
//! Contract:
//! - A map (std's `HashMap`, hashbrown, with the Fx hash); iteration order is never used
//!   for output (callers sort), so how the table is laid out changes no result.
//! - It does not double because of tombstones. A removed entry often leaves a tombstone,
//!   which hashbrown counts against the room left; when the room runs out it cleans them
//!   in place only if at most half full, else it doubles. SA pairs come and go all day, so
//!   the campus's table, three-fifths full of live pairs, doubled to one a third full (193
//!   bytes per live SA on the full-campus day instead of 96). Here, when the room runs out
//!   while less than three-quarters full, the table is rebuilt at its size instead: the
//!   rebuild moves every entry (at most once per quarter of the table's inserts) and holds
//!   two copies of it for a moment.
//! - The table is 8 shards by a hash of the key, each growing and rebuilt on its own, so
//!   a doubling or a rebuild holds one shard twice, not the whole table.
//! - [`PairTable::bytes_peak`] is the table's memory at its largest capacity, from
//!   [`hash_table_bytes`].

use rustc_hash::FxHashMap;

/// Memory of a `hashbrown` table (std's `HashMap`) of `capacity` entries of `entry` bytes:
/// it has a power-of-two number of buckets, filled to at most 7/8 (`capacity` is 7/8 of
/// the buckets from 8 up, one less than them below), one control byte per bucket plus a
/// group of 16 for wrap-around probing.
pub fn hash_table_bytes(capacity: usize, entry: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 { capacity + 1 } else { capacity / 7 * 8 };
    (buckets * (entry + 1) + 16) as u64
}

/// Shards of the table: a power of two. Each grows and is rebuilt on its own, so a
/// resize holds two copies of one shard (1/8 of the table) for a moment, not of the
/// whole table (a doubling held 1.5x the table, a rebuild at the same size 2x: 306 MB on
/// the full-campus day, its peak). Not more shards: a campus-sized shard must stay well
/// above [`crate::huge_pages::THRESHOLD`] to be backed by huge pages (64 shards of 2.4 MB
/// made the full-campus day 8% slower).
const SHARD_BITS: u32 = 3;
const SHARDS: usize = 1 << SHARD_BITS;

pub struct PairTable<V> {
    shards: Vec<Shard<V>>,
}

/// One shard: a map that does not double because of tombstones.
struct Shard<V> {
    map: FxHashMap<u64, V>,
    /// The largest capacity the shard has had (its entries' room, 7/8 of its buckets). The
    /// shard never shrinks, so this is also its capacity now.
    capacity_peak: usize,
}

impl<V> Default for PairTable<V> {
    fn default() -> Self {
        PairTable { shards: (0..SHARDS).map(|_| Shard { map: FxHashMap::default(), capacity_peak: 0 }).collect() }
    }
}

/// The shard of a key: the top bits of a multiplicative hash with another constant than
/// the map's own (Fx), so that keys of one shard still spread over its buckets.
#[inline]
fn shard_of(key: u64) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_BITS)) as usize
}

impl<V> PairTable<V> {
    #[inline]
    fn shard(&self, key: u64) -> &Shard<V> {
        &self.shards[shard_of(key)]
    }

    pub fn get(&self, key: u64) -> Option<&V> {
        self.shard(key).map.get(&key)
    }

    pub fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        self.shards[shard_of(key)].map.get_mut(&key)
    }

    pub fn remove(&mut self, key: u64) -> Option<V> {
        self.shards[shard_of(key)].map.remove(&key)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.map.len()).sum()
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.shards.iter().flat_map(|s| s.map.iter().map(|(&k, v)| (k, v)))
    }

    /// Inserts or replaces the entry of `key`.
    pub fn insert(&mut self, key: u64, value: V) {
        let shard = &mut self.shards[shard_of(key)];
        // `capacity()` is the entries plus the room left: it falls as tombstones pile up.
        let room_used_up = shard.map.len() == shard.map.capacity();
        if room_used_up && !shard.map.contains_key(&key) && shard.map.len() < shard.capacity_peak / 4 * 3 {
            let mut rebuilt = FxHashMap::with_capacity_and_hasher(shard.capacity_peak, Default::default());
            rebuilt.extend(shard.map.drain());
            shard.map = rebuilt;
        }
        shard.map.insert(key, value);
        shard.capacity_peak = shard.capacity_peak.max(shard.map.capacity());
    }

    /// Bytes the table held at its largest (every shard at its largest: shards never
    /// shrink, so they are all at their largest at once).
    pub fn bytes_peak(&self) -> u64 {
        let entry = std::mem::size_of::<(u64, V)>();
        self.shards.iter().map(|s| hash_table_bytes(s.capacity_peak, entry)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formula's bucket count is what std's table has: a power of two, and the
    /// capacity the table reports is exactly the 7/8 (or bucket - 1) fill of it.
    #[test]
    fn hash_table_bytes_follows_the_tables_growth() {
        let mut m: std::collections::HashMap<u64, [u8; 64]> = std::collections::HashMap::new();
        assert_eq!(hash_table_bytes(m.capacity(), 72), 0);
        let mut seen = 0;
        for k in 0..100_000u64 {
            m.insert(k, [0; 64]);
            let cap = m.capacity();
            if cap != seen {
                seen = cap;
                let bytes = hash_table_bytes(cap, 72) - 16;
                assert_eq!(bytes % 73, 0);
                let buckets = (bytes / 73) as usize;
                assert!(buckets.is_power_of_two(), "capacity {cap}: {buckets} buckets");
                let fill = if buckets < 8 { buckets - 1 } else { buckets / 8 * 7 };
                assert_eq!(fill, cap);
                assert!(m.len() <= cap);
            }
        }
        assert_eq!(seen, 114_688, "131,072 buckets hold 100,000 entries");
    }

    /// Pairs arriving and leaving all day with a steady number alive: the table keeps the
    /// size its live entries need. A plain `HashMap` churned this way (57% full) doubles
    /// once tombstones use up its room; this test fails on one.
    #[test]
    fn churn_at_a_steady_population_does_not_grow_the_table() {
        let live = 65_000;
        // Pairs of hosts of a 272,555-host campus, as `pair_key` makes them, from a
        // xorshift stream: the Fx hash spreads such keys unevenly, which is what makes
        // tombstones (a sequential key stream hashes too evenly to leave any).
        let mut x = 12_345u64;
        let mut pair = move || {
            let mut host = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % 272_555
            };
            let (a, b) = (host(), host());
            (a.min(b) << 32) | a.max(b)
        };
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
        assert_eq!(table.bytes_peak(), settled, "the table doubled under churn");
        let count = table.iter().count();
        assert!(count <= live as usize && count > live as usize * 99 / 100, "{count} entries");
        for &k in alive.iter().rev().take(1000) {
            assert!(table.get(k).is_some(), "a live pair survived the rebuilds");
        }
    }

    /// Real growth still grows it.
    #[test]
    fn more_live_entries_grow_the_table() {
        let mut table = PairTable::default();
        table.insert(1, 0u64);
        let small = table.bytes_peak();
        for k in 0..100_000u64 {
            table.insert(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), k);
        }
        assert!(table.bytes_peak() > small * 1000);
        assert_eq!(table.len(), 100_001);
    }

    /// Pair keys spread evenly over the shards (no shard twice another's load, which would
    /// make its doublings, and their transient copies, the table's).
    #[test]
    fn pair_keys_spread_evenly_over_the_shards() {
        let mut load = [0usize; SHARDS];
        for a in 0..2_000u64 {
            for b in (a + 1..2_000).step_by(7) {
                load[shard_of((a << 32) | b)] += 1;
            }
        }
        let mean = load.iter().sum::<usize>() / SHARDS;
        let (min, max) = (load.iter().min().copied(), load.iter().max().copied());
        assert!(min > Some(mean * 9 / 10) && max < Some(mean * 11 / 10), "{min:?}..{max:?} around {mean}");
    }
}
