//! Which of a policy's filters can match a packet, found by the packet's addresses instead
//! of by trying every filter.
//!
//! A policy's filters are tried heaviest first and the first match decides. Phase 1 adds a
//! filter per subnet to a list (`any <-> subnet`), so a policy ends up with about as many
//! filters as the campus has subnets, and trying them one by one made each decision the
//! cache misses grow with the campus (and the misses grow with it too). A filter with a
//! prefix end can only match a packet one of whose addresses lies in that prefix: its
//! source, or for a mirrored filter its destination, and the other end likewise. So each
//! such filter is filed under its prefix (under each prefix of a list), and a packet's
//! candidates are the filters filed under the prefixes that hold either of its addresses,
//! one hash lookup per prefix length in use and address, with the filters that have no
//! prefix end. The first of them, in the policy's order, that matches is the first filter
//! that matches, since no other filter can.

use rustc_hash::FxHashMap;

use super::{AddrMatch, CompiledFilter};

/// The filters of one policy, by the prefixes their addresses must lie in.
#[derive(Default)]
pub(super) struct FilterIndex {
    /// Positions of filters in the policy's order, by (network, mask) of the end they are
    /// filed under.
    by_prefix: FxHashMap<(u32, u32), Vec<u32>>,
    /// The masks `by_prefix` holds.
    masks: Vec<u32>,
    /// Filters whose ends are only `any`, `me` or host sets, in any mix: always candidates.
    /// (A filter with an empty prefix list at an end and no other prefix end is in no
    /// list: it matches nothing.)
    always: Vec<u32>,
}

impl FilterIndex {
    /// Files the filters of one policy, in its order.
    pub(super) fn new(filters: &[CompiledFilter]) -> FilterIndex {
        let mut index = FilterIndex::default();
        for (i, f) in filters.iter().enumerate() {
            let i = i as u32;
            // Filed under one end only: a match needs both ends to hold an address, so
            // either end's prefixes find every packet it can match.
            match (&f.src, &f.dst) {
                (AddrMatch::Prefix { net, mask }, _) | (_, AddrMatch::Prefix { net, mask }) => {
                    index.file(i, *net, *mask)
                }
                (AddrMatch::Prefixes(v), _) | (_, AddrMatch::Prefixes(v)) => {
                    v.iter().for_each(|&(net, m)| index.file(i, net, m))
                }
                _ => index.always.push(i),
            }
        }
        index
    }

    /// Files filter `i` under the prefix (`net`, `m`).
    fn file(&mut self, i: u32, net: u32, m: u32) {
        // Masks are contiguous (see `mask`), one per prefix length.
        debug_assert_eq!(m.leading_ones() + m.trailing_zeros(), 32, "a mask with a gap: {m:#x}");
        let filed = self.by_prefix.entry((net & m, m)).or_default();
        // A list may name a prefix twice: file the filter once.
        if filed.last() != Some(&i) {
            filed.push(i);
        }
        if !self.masks.contains(&m) {
            self.masks.push(m);
        }
    }

    /// The position of the first filter, in the policy's order, for which `matches` holds
    /// among those that can match a packet between `a` and `b` (either way). Each list is
    /// in the policy's order, so each is tried up to its first match or the best so far.
    pub(super) fn first_match(&self, a: u32, b: u32, mut matches: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut best: Option<u32> = None;
        let mut try_list = |list: &[u32]| {
            let found = list.iter().take_while(|&&i| best.is_none_or(|b| i < b)).find(|&&i| matches(i)).copied();
            if found.is_some() {
                best = found;
            }
        };
        try_list(&self.always);
        for &m in &self.masks {
            let keys = [(a & m, m), (b & m, m)];
            let distinct = if keys[0] == keys[1] { 1 } else { 2 };
            for key in &keys[..distinct] {
                if let Some(list) = self.by_prefix.get(key) {
                    try_list(list);
                }
            }
        }
        best
    }
}
