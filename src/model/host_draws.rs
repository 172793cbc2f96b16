//! The campaign's per-host draws that cover the whole campus at once, made ahead on
//! another core.
//!
//! Two of the campaign's steps read a ChaCha block of every host:
//! - on each workday, every host that could join a domain, be reimaged or let NAP lapse
//!   reads six uniforms from the start of its stream for the day (purpose `DAILY`, epoch =
//!   the day): for each of the three, whether it happens today and at what time of the
//!   office day ([`daily_uniforms`]);
//! - when a policy or settings change is published, every managed host draws the time of
//!   its Group Policy refresh from its stream for the refresh round (purpose `GP`, epoch =
//!   the round; [`refresh_uniforms`]).
//!
//! Those blocks were about 10% of the default rollout's loop (6.3 s of 60 on its 260,000
//! hosts). They depend on nothing but (seed, host, purpose, epoch), so a [`HostDrawer`]
//! computes the uniforms the campaign needs of every host for the epochs to come
//! ([`HostDraws`]) while the loop simulates, and the campaign reads them. For the daily
//! draws only the three deciding uniforms are kept; the campaign draws a host's whole
//! block itself when something happens to it (a few thousand hosts a day). Without a
//! drawer it draws everything itself.
//!
//! Contract:
//! - [`HostDraws::get`] returns exactly the kept uniforms of the stream it was drawn for,
//!   so using the draws or not cannot change a run.
//! - A drawer yields its epochs in order; memory is two arrays of 24 bytes a host per
//!   drawer when buffers are handed back to [`HostDrawer::next`].

use rand::RngExt;

use super::ids::HostId;
use super::streams::{entity, purpose};
use crate::engine::rng::{RngStreams, StreamKey};

/// Uniforms kept per host and epoch, at most.
pub const KEPT: usize = 3;

/// The first `N` uniforms of a host's stream of `purpose` and `epoch`.
fn uniforms<const N: usize>(streams: &RngStreams, host: HostId, purpose: u8, epoch: u32) -> [f64; N] {
    let mut rng = streams.window(StreamKey::new(entity::HOST, host.0, purpose, epoch as u16), 0);
    std::array::from_fn(|_| rng.random::<f64>())
}

/// A host's six daily uniforms, in stream order: (join, join time), (reimage, reimage
/// time), (NAP lapse, lapse time).
pub fn daily_uniforms(streams: &RngStreams, host: HostId, day: u32) -> [f64; 6] {
    uniforms(streams, host, purpose::DAILY, day)
}

/// A host's Group Policy refresh uniforms of a refresh round: (interval, position in it).
pub fn refresh_uniforms(streams: &RngStreams, host: HostId, round: u32) -> [f64; 2] {
    uniforms(streams, host, purpose::GP, round)
}

/// Whether `day` is a workday of a run that starts on `start_weekday` (0 = Monday): the
/// population changes only on workdays.
pub fn is_workday(start_weekday: u8, day: u32) -> bool {
    (u32::from(start_weekday) + day) % 7 < 5
}

/// Which draws a [`HostDrawer`] makes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Draws {
    /// The deciding uniforms of [`daily_uniforms`] (join, reimage, NAP lapse); epoch = day.
    DailyDeciding,
    /// Both of [`refresh_uniforms`] (the third is 0); epoch = refresh round.
    Refresh,
}

/// The deciding three of a host's six daily uniforms (see [`daily_uniforms`]).
pub fn deciding(u: &[f64; 6]) -> [f64; 3] {
    [u[0], u[2], u[4]]
}

impl Draws {
    fn kept(self, streams: &RngStreams, host: HostId, epoch: u32) -> [f64; KEPT] {
        match self {
            Draws::DailyDeciding => deciding(&daily_uniforms(streams, host, epoch)),
            Draws::Refresh => {
                let [a, b] = refresh_uniforms(streams, host, epoch);
                [a, b, 0.0]
            }
        }
    }
}

/// The kept uniforms of every host for one epoch.
#[derive(Debug)]
pub struct HostDraws {
    epoch: u32,
    kept: Vec<[f64; KEPT]>,
}

impl HostDraws {
    /// Draws `epoch`'s uniforms of hosts `0..hosts` into `buffer`'s storage (any contents).
    pub fn draw(streams: &RngStreams, draws: Draws, hosts: usize, epoch: u32, buffer: Option<HostDraws>) -> HostDraws {
        let mut kept = buffer.map(|b| b.kept).unwrap_or_default();
        kept.clear();
        kept.extend((0..hosts).map(|i| draws.kept(streams, HostId::from_index(i), epoch)));
        HostDraws { epoch, kept }
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// `host`'s kept uniforms (see [`Draws`]).
    pub fn get(&self, host: HostId) -> [f64; KEPT] {
        self.kept[host.index()]
    }
}

/// Draws the uniforms of every host for a sequence of epochs, one after another.
pub struct HostDrawer<I> {
    streams: RngStreams,
    draws: Draws,
    hosts: usize,
    epochs: I,
}

impl<I: Iterator<Item = u32>> HostDrawer<I> {
    /// A drawer of `draws` for hosts `0..hosts` at each of `epochs`.
    pub fn new(streams: RngStreams, draws: Draws, hosts: usize, epochs: I) -> HostDrawer<I> {
        HostDrawer { streams, draws, hosts, epochs }
    }

    /// The next epoch's draws, made into `spare`'s storage if given; `None` after the last.
    pub fn next(&mut self, spare: Option<HostDraws>) -> Option<HostDraws> {
        let epoch = self.epochs.next()?;
        Some(HostDraws::draw(&self.streams, self.draws, self.hosts, epoch, spare))
    }
}

/// Takes back the draws of an epoch the campaign is done with, if any (their buffer can
/// be reused), and hands over the next epoch's, or `None` when there are no more.
pub type DrawSource<'a> = Box<dyn FnMut(Option<HostDraws>) -> Option<HostDraws> + 'a>;

/// The draws of one kind from a [`DrawSource`]: the epoch in hand, and the one before, to
/// hand back.
#[derive(Default)]
pub struct DrawsAhead<'a> {
    source: Option<DrawSource<'a>>,
    /// The source's first epoch: earlier ones are not asked of it (which would wait for
    /// its first draws, only to pass them over).
    first: u32,
    next: Option<HostDraws>,
    done: Option<HostDraws>,
    /// Epochs handed over, and epochs from `first` on the source did not have.
    pub hits: u32,
    pub misses: u32,
}

impl<'a> DrawsAhead<'a> {
    /// Draws from `source`, whose epochs start at `first`.
    pub fn new(source: DrawSource<'a>, first: u32) -> DrawsAhead<'a> {
        DrawsAhead { source: Some(source), first, ..DrawsAhead::default() }
    }

    /// The source's draws of `epoch`, if it has them (epochs asked for in increasing
    /// order; the source's earlier ones are passed over). Hand them back with
    /// [`DrawsAhead::done`].
    pub fn take(&mut self, epoch: u32) -> Option<HostDraws> {
        if epoch < self.first {
            return None;
        }
        let found = self.find(epoch);
        if found.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        found
    }

    fn find(&mut self, epoch: u32) -> Option<HostDraws> {
        loop {
            match self.next.take() {
                Some(d) if d.epoch() == epoch => return Some(d),
                Some(d) if d.epoch() > epoch => {
                    self.next = Some(d);
                    return None;
                }
                earlier => self.done = earlier.or(self.done.take()),
            }
            let source = self.source.as_mut()?;
            self.next = source(self.done.take());
            if self.next.is_none() {
                self.source = None;
                return None;
            }
        }
    }

    /// Gives back draws that [`DrawsAhead::take`] handed over.
    pub fn done(&mut self, draws: Option<HostDraws>) {
        if draws.is_some() {
            self.done = draws;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_draws_are_the_host_streams_uniforms() {
        let streams = RngStreams::new(7);
        for draws in [Draws::DailyDeciding, Draws::Refresh] {
            let workdays = (0..10).filter(|&d| is_workday(5, d));
            let mut drawer = HostDrawer::new(streams.clone(), draws, 50, workdays);
            let mut seen = Vec::new();
            let mut spare = None;
            while let Some(d) = drawer.next(spare.take()) {
                for i in 0..50 {
                    let h = HostId::from_index(i);
                    // The host's stream read with rand_chacha itself.
                    let (p, picks) = match draws {
                        Draws::DailyDeciding => (purpose::DAILY, [0, 2, 4]),
                        Draws::Refresh => (purpose::GP, [0, 1, 6]),
                    };
                    let mut rng = streams.stream(StreamKey::new(entity::HOST, i as u32, p, d.epoch() as u16));
                    let mut u: [f64; 7] = std::array::from_fn(|_| rng.random::<f64>());
                    u[6] = 0.0;
                    let want = picks.map(|k| u[k]);
                    assert_eq!(d.get(h), want);
                }
                seen.push(d.epoch());
                spare = Some(d);
            }
            // Day 0 is a Saturday: workdays are 2..=6 and 9.
            assert_eq!(seen, vec![2, 3, 4, 5, 6, 9]);
        }
    }

    #[test]
    fn uniforms_are_the_start_of_the_stream() {
        let streams = RngStreams::new(3);
        let mut rng = streams.stream(StreamKey::new(entity::HOST, 11, purpose::DAILY, 4));
        let want: [f64; 6] = std::array::from_fn(|_| rng.random::<f64>());
        assert_eq!(daily_uniforms(&streams, HostId(11), 4), want);
        assert_ne!(daily_uniforms(&streams, HostId(11), 5), want);
        let mut rng = streams.stream(StreamKey::new(entity::HOST, 11, purpose::GP, 4));
        assert_eq!(refresh_uniforms(&streams, HostId(11), 4), [rng.random::<f64>(), rng.random::<f64>()]);
    }

    #[test]
    fn taking_ahead_skips_earlier_epochs_and_keeps_later_ones() {
        let streams = RngStreams::new(1);
        let mut drawer = HostDrawer::new(streams, Draws::Refresh, 4, [1, 3, 4].into_iter());
        let mut ahead = DrawsAhead::new(Box::new(move |spare| drawer.next(spare)), 1);
        // Before the source's first epoch nothing is asked of it.
        assert!(ahead.take(0).is_none());
        assert!(ahead.next.is_none(), "the source was asked for an epoch before its first");
        let one = ahead.take(1).map(|d| d.epoch());
        assert_eq!(one, Some(1));
        // Epoch 2 is not drawn ahead: the source's 3, drawn to find that out, is kept...
        assert!(ahead.take(2).is_none());
        assert_eq!(ahead.next.as_ref().map(HostDraws::epoch), Some(3));
        // ... and passed over when 4 is asked for.
        let four = ahead.take(4);
        assert_eq!(four.as_ref().map(HostDraws::epoch), Some(4));
        ahead.done(four);
        assert!(ahead.take(5).is_none());
        assert!(ahead.source.is_none(), "the source is dropped once it runs out");
        assert_eq!((ahead.hits, ahead.misses), (2, 2));
    }
}
