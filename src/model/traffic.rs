//! Applications, who talks to whom, and when: the scenario's application catalogue
//! compiled into per-host-kind arrival rates and per-session draws.
//!
//! Contract:
//! - Sessions of a host form a non-homogeneous Poisson process whose rate is constant
//!   within each hour: the sum over the applications the host's kind runs of
//!   `sessions_per_day x profile[hour] / 24`, times the weekend factor on Saturday and
//!   Sunday. Arrivals are drawn exactly by inverting the integrated rate, never by
//!   thinning, so a day's arrivals depend only on the host's stream for that day.
//! - A session draws, in a fixed order: which application (by the rates at its hour), bytes
//!   each way and duration (lognormal), two uniforms for the IPsec layer, then its peer.
//! - Durations are capped at [`MAX_SESSION`] so that a session's bytes never reach past the
//!   next midnight's accounting.
//! - Pure: no I/O, time is an argument.

use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

use super::campus::{Campus, Endpoint};
use super::ids::{AppId, HostId};
use super::kinds::{HostKind, Protocol};
use super::topology::Route;
use crate::engine::{SimDuration, SimTime};
use crate::scenario::build::{Scenario, Target};

/// Longest session the model keeps (longer draws are cut here).
pub const MAX_SESSION: SimDuration = SimDuration::from_hours(12);

const HOUR_NS: f64 = 3.6e12;

#[derive(Debug, Clone)]
pub struct AppSpec {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub target: Target,
    mu_up: f64,
    mu_down: f64,
    size_sigma: f64,
    mu_duration_s: f64,
    duration_sigma: f64,
}

/// Arrival rates of one host kind.
#[derive(Debug, Clone, Default)]
struct KindRates {
    /// Sessions per hour, by hour of day, on a weekday.
    hourly: [f64; 24],
    /// Cumulative application choice at each hour: (app, cumulative probability).
    choice: Vec<Vec<(AppId, f64)>>,
}

/// One session as drawn: what, with whom, how much, how long.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Session {
    pub app: AppId,
    pub peer: Endpoint,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration: SimDuration,
    /// Uniform draws for the IPsec layer: random IKE failure, NLB node choice.
    pub u_ike: f64,
    pub u_node: f64,
}

#[derive(Debug, Clone)]
pub struct TrafficModel {
    pub apps: Vec<AppSpec>,
    kinds: Vec<KindRates>,
    weekend_factor: f64,
    start_weekday: u8,
    popular_local_share: f64,
    peer_building_share: f64,
    tcp_window_bytes: u64,
}

/// Where `mass` expected sessions are used up from the time of day `from`, at `hourly`
/// rates (sessions per hour, by hour of day) times `factor`: the time of day in
/// nanoseconds (unrounded) and the end of its hour; `None` if the day ends first. What a
/// host's next arrival spends an Exp(1) mass along ([`TrafficModel::next_arrival`]), and
/// what the session drawing ahead cuts its windows by (`day_plan::PlanDrawer`).
pub fn spend_expected(hourly: &[f64; 24], factor: f64, from: SimDuration, mut mass: f64) -> Option<(f64, f64)> {
    let mut t_ns = from.as_nanos() as f64;
    let mut hour = (from.as_nanos() / SimDuration::HOUR.as_nanos()) as usize;
    while hour < 24 {
        let rate_per_ns = hourly[hour] * factor / HOUR_NS;
        let hour_end = (hour + 1) as f64 * HOUR_NS;
        let available = rate_per_ns * (hour_end - t_ns);
        if rate_per_ns > 0.0 && mass < available {
            return Some((t_ns + mass / rate_per_ns, hour_end));
        }
        mass -= available;
        t_ns = hour_end;
        hour += 1;
    }
    None
}

impl TrafficModel {
    pub fn new(sc: &Scenario) -> Self {
        let t = &sc.traffic;
        let apps: Vec<AppSpec> = t
            .apps
            .iter()
            .map(|a| AppSpec {
                name: a.name.clone(),
                protocol: a.protocol,
                port: a.port,
                target: a.to,
                mu_up: (a.bytes_up_median.max(1) as f64).ln(),
                mu_down: (a.bytes_down_median.max(1) as f64).ln(),
                size_sigma: a.size_sigma,
                mu_duration_s: a.duration_median.as_secs_f64().max(1e-6).ln(),
                duration_sigma: a.duration_sigma,
            })
            .collect();
        let mut kinds = vec![KindRates::default(); HostKind::COUNT];
        for (k, rates) in kinds.iter_mut().enumerate() {
            let kind = HostKind::from_dense_index(k);
            let runs: Vec<usize> = (0..t.apps.len()).filter(|&a| t.apps[a].from.contains(&kind)).collect();
            rates.choice = vec![Vec::new(); 24];
            for h in 0..24 {
                let per_app: Vec<f64> = runs
                    .iter()
                    .map(|&a| t.apps[a].sessions_per_day * t.profiles[t.apps[a].profile].hourly[h] / 24.0)
                    .collect();
                let total: f64 = per_app.iter().sum();
                rates.hourly[h] = total;
                let mut acc = 0.0;
                for (i, &a) in runs.iter().enumerate() {
                    if per_app[i] > 0.0 {
                        acc += per_app[i] / total;
                        rates.choice[h].push((AppId::from_index(a), acc));
                    }
                }
            }
        }
        TrafficModel {
            apps,
            kinds,
            weekend_factor: t.weekend_factor,
            start_weekday: sc.run.start_weekday,
            popular_local_share: t.popular_local_share,
            peer_building_share: t.peer_building_share,
            tcp_window_bytes: t.tcp_window_bytes,
        }
    }

    /// The session's duration once the network is taken into account: a TCP flow moves at
    /// most one window per round trip and never faster than the slowest link of its
    /// route, so a large transfer over a thin WAN link takes longer than drawn. UDP
    /// exchanges (small request/response) keep their drawn duration.
    pub fn network_duration(&self, s: &Session, route: &Route) -> SimDuration {
        if self.apps[s.app.index()].protocol != Protocol::Tcp || route.is_empty() {
            return s.duration;
        }
        let bottleneck_bps = route.bottleneck_bps() as f64;
        let rtt_s = route.rtt().as_secs_f64().max(1e-6);
        let window_bps = self.tcp_window_bytes as f64 * 8.0 / rtt_s;
        let rate = bottleneck_bps.min(window_bps);
        let bits = s.bytes_up.max(s.bytes_down) as f64 * 8.0;
        s.duration.max(SimDuration::from_secs_f64(bits / rate)).min(MAX_SESSION)
    }

    /// A host kind's expected sessions per hour, by hour of day, on a weekday (scale by
    /// [`TrafficModel::day_factor`] for another day): the rates [`TrafficModel::next_arrival`]
    /// draws from.
    pub fn hourly_rates(&self, kind: HostKind) -> &[f64; 24] {
        &self.kinds[kind.dense_index()].hourly
    }

    /// Activity factor of a simulated day (weekends are quieter).
    pub fn day_factor(&self, day: u32) -> f64 {
        let weekday = (u32::from(self.start_weekday) + day) % 7;
        if weekday >= 5 { self.weekend_factor } else { 1.0 }
    }

    /// Expected sessions a day for a host kind on a weekday.
    pub fn daily_rate(&self, kind: HostKind) -> f64 {
        self.kinds[kind.dense_index()].hourly.iter().sum()
    }

    /// The next session arrival of a host of `kind` strictly after `now`, within the same
    /// simulated day; `None` if the day ends first. `rng` is the host's stream for the day.
    pub fn next_arrival<R: Rng + ?Sized>(&self, kind: HostKind, now: SimTime, rng: &mut R) -> Option<SimTime> {
        let rates = &self.kinds[kind.dense_index()];
        let factor = self.day_factor(now.day());
        if factor <= 0.0 {
            return None;
        }
        // Exp(1) mass to spend along the integrated rate.
        let u: f64 = rng.random();
        let mass = -(1.0 - u).ln();
        let (at, hour_end) = spend_expected(&rates.hourly, factor, now.time_of_day(), mass)?;
        // Strictly after now, and inside the hour despite rounding.
        let at = (at.round() as u64).clamp(now.time_of_day().as_nanos() + 1, hour_end as u64 - 1);
        Some(SimTime::start_of_day(now.day()) + SimDuration::from_nanos(at))
    }

    /// Draws the session that arrives at `now` for `host`. `None` if the chosen
    /// application finds no peer (e.g. a peer application on a one-host campus).
    pub fn draw_session<R: Rng + ?Sized>(
        &self,
        campus: &Campus,
        host: HostId,
        now: SimTime,
        rng: &mut R,
    ) -> Option<Session> {
        let h = campus.host(host);
        let rates = &self.kinds[h.kind.dense_index()];
        let hour = (now.time_of_day().as_nanos() / SimDuration::HOUR.as_nanos()) as usize;
        let u: f64 = rng.random();
        let choice = &rates.choice[hour];
        let app = choice.iter().find(|c| u < c.1).or(choice.last()).map(|c| c.0)?;
        let spec = &self.apps[app.index()];
        let z_up: f64 = StandardNormal.sample(rng);
        let z_down: f64 = StandardNormal.sample(rng);
        let z_dur: f64 = StandardNormal.sample(rng);
        let u_ike: f64 = rng.random();
        let u_node: f64 = rng.random();
        let region = campus.sites[h.site.index()].region;
        let peer = match spec.target {
            Target::Home(role) => campus.home_server(host, role).filter(|&p| p != host).map(Endpoint::Host),
            Target::Popular(role) => campus
                .popular_endpoint(role, region, self.popular_local_share, rng)
                .filter(|&e| e != Endpoint::Host(host)),
            Target::Peer => campus.peer(host, self.peer_building_share, rng).map(Endpoint::Host),
        }?;
        let size = |mu: f64, z: f64| (mu + spec.size_sigma * z).exp().round().clamp(1.0, 1e13) as u64;
        let duration =
            SimDuration::from_secs_f64((spec.mu_duration_s + spec.duration_sigma * z_dur).exp()).min(MAX_SESSION);
        Some(Session {
            app,
            peer,
            bytes_up: size(spec.mu_up, z_up),
            bytes_down: size(spec.mu_down, z_down),
            duration: duration.max(SimDuration::from_millis(1)),
            u_ike,
            u_node,
        })
    }
}
