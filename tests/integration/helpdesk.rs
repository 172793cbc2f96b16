//! The helpdesk model (`model::helpdesk`): Erlang C against DOMAIN.md's check vector and
//! exact rational values; the simulated FCFS queue against Erlang C at stationary load
//! (batch-means confidence bounds); opening hours, carry-over and conservation of calls;
//! the baseline call generator against the paper's ~7,000 calls a month; call propensity.

use domiso::engine::{RngStreams, SimDuration, SimTime, StreamKey};
use domiso::model::helpdesk::{
    Call, CallOutcome, Cause, Circumstances, DayReport, HelpdeskParams, HelpdeskQueue, PerCause, Propensity,
    baseline_calls, call_probability, erlang_c, mean_wait, wait_quantile, wait_tail,
};
use domiso::model::ids::UserId;
use domiso::model::streams::entity;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1};

const FIVE_MIN: SimDuration = SimDuration::from_mins(5);

/// Purpose numbers for the test's own streams (`model::streams` has no helpdesk purpose
/// yet; these only need to be distinct from each other here).
const TEST_ARRIVALS: u8 = 250;
const TEST_SERVICE: u8 = 251;

fn params(weekday: u32, weekend: u32, open_h: u64, close_h: u64) -> HelpdeskParams {
    let mut hourly_profile = [0.0; 24];
    // A campus day: quiet early, peaks mid-morning and mid-afternoon.
    for (h, w) in hourly_profile.iter_mut().enumerate() {
        *w = match h {
            8 => 0.8,
            9..=11 => 1.4,
            12 => 0.9,
            13..=15 => 1.3,
            16 => 1.0,
            17 => 0.6,
            _ => 0.2,
        };
    }
    HelpdeskParams {
        agents_weekday: weekday,
        agents_weekend: weekend,
        open: SimDuration::from_hours(open_h),
        close: SimDuration::from_hours(close_h),
        mean_service: FIVE_MIN,
        baseline_calls_per_month: 7000.0,
        weekend_factor: 0.15,
        hourly_profile,
    }
}

fn at(day: u32, h: u64, m: u64) -> SimTime {
    SimTime::start_of_day(day) + SimDuration::from_hours(h) + SimDuration::from_mins(m)
}

// ---------------------------------------------------------------------------------------
// Erlang C
// ---------------------------------------------------------------------------------------

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

#[test]
fn erlang_c_check_vector_from_domain_md() {
    // lambda = 30/h, mean service 5 min: A = 2.5.
    let lambda = 30.0 / 3600.0;
    let a = lambda * FIVE_MIN.as_secs_f64();
    assert!((a - 2.5).abs() < 1e-12);
    assert_eq!(round4(erlang_c(5, a)), 0.1304);
    assert_eq!(round4(erlang_c(6, a)), 0.0474);
    // W_q = C / (c mu - lambda) = 0.130371 x 300 s / 2.5 = 15.645 s.
    let w = mean_wait(5, lambda, FIVE_MIN).unwrap();
    assert!((w.as_secs_f64() - 15.6446).abs() < 1e-3, "{w}");
    assert_eq!(wait_tail(5, lambda, FIVE_MIN, SimDuration::ZERO).map(round4), Some(0.1304));
}

#[test]
fn erlang_c_textbook_values() {
    // Exact rational evaluations of the DOMAIN.md formula (Python `fractions`).
    let cases: [(u32, f64, f64); 8] = [
        (1, 0.5, 0.5), // M/M/1: C = rho
        (2, 1.0, 1.0 / 3.0),
        (3, 2.5, 0.702_247_191_011_236),
        (4, 2.5, 0.319_856_704_196_519_96),
        (10, 8.0, 0.409_180_150_796_443_54),
        (50, 40.0, 0.086_952_549_526_766_07),
        (100, 90.0, 0.216_940_480_906_366_4),
        (300, 280.5, 0.173_299_257_999_750_27),
    ];
    for (c, a, want) in cases {
        let got = erlang_c(c, a);
        assert!((got - want).abs() < 1e-10, "C({c}, {a}) = {got}, want {want}");
    }
}

#[test]
fn erlang_c_is_monotone_and_a_probability() {
    for a in [0.01f64, 0.5, 2.5, 7.9, 42.0, 199.0] {
        let first = a.floor() as u32 + 1; // smallest stable staffing
        let rate = a / 300.0; // per second, with 5-minute services
        let (mut prev, mut prev_w) = (1.0, SimDuration::MAX);
        for c in first..first + 60 {
            let x = erlang_c(c, a);
            if c < first + 20 {
                // (Far past the load C underflows towards 0; strictness is checked nearby.)
                assert!(x > 0.0 && x < 1.0, "C({c}, {a}) = {x}");
                assert!(x < prev, "C not decreasing in agents at c={c}, A={a}");
            }
            assert!(x <= prev);
            prev = x;
            // The mean wait decreases with staffing too.
            let w = mean_wait(c, rate, FIVE_MIN).unwrap();
            assert!(w <= prev_w, "mean wait not decreasing at c={c}, A={a}");
            prev_w = w;
        }
        assert_eq!(erlang_c(first - 1, a), 1.0, "unstable staffing: every call waits");
        assert_eq!(mean_wait(first - 1, a / 300.0, FIVE_MIN), None);
    }
}

#[test]
fn analytic_p90_inverts_the_tail() {
    let lambda = 30.0 / 3600.0;
    for c in [3, 4] {
        let p90 = wait_quantile(c, lambda, FIVE_MIN, 0.9).unwrap();
        let tail = wait_tail(c, lambda, FIVE_MIN, p90).unwrap();
        assert!((tail - 0.1).abs() < 1e-9, "c={c}: P(W > p90) = {tail}");
    }
    // C(5, 2.5) = 0.13 > 0.1, so the p90 is positive but short; C(6, 2.5) < 0.1: p90 = 0.
    assert!(wait_quantile(5, lambda, FIVE_MIN, 0.9).unwrap() > SimDuration::ZERO);
    assert_eq!(wait_quantile(6, lambda, FIVE_MIN, 0.9), Some(SimDuration::ZERO));
}

// ---------------------------------------------------------------------------------------
// The simulated queue against Erlang C
// ---------------------------------------------------------------------------------------

/// Poisson arrivals at `rate_per_h` for `days` whole days, split by day.
fn poisson_days(rate_per_h: f64, days: u32, rng: &mut ChaCha8Rng) -> Vec<Vec<Call>> {
    let mut out = vec![Vec::new(); days as usize];
    let mean_gap_s = 3600.0 / rate_per_h;
    let mut t = SimTime::ZERO;
    loop {
        let gap: f64 = Exp1.sample(rng);
        t += SimDuration::from_secs_f64(gap * mean_gap_s);
        if t.day() >= days {
            break;
        }
        out[t.day() as usize].push(Call { at: t, cause: Cause::Other, user: None });
    }
    out
}

/// Runs a 24/7 desk with `agents` agents under Poisson load for `days` days (then drains
/// it), and returns the answered calls that arrived after a one-day warm-up, by arrival.
fn stationary_run(agents: u32, rate_per_h: f64, days: u32, seed: u64) -> Vec<CallOutcome> {
    let streams = RngStreams::new(seed);
    let mut arrivals_rng = streams.stream(StreamKey::new(entity::CAMPUS, 0, TEST_ARRIVALS, 0));
    let by_day = poisson_days(rate_per_h, days, &mut arrivals_rng);
    let mut q = HelpdeskQueue::new(params(agents, agents, 0, 24));
    let mut outcomes = Vec::new();
    for day in 0.. {
        let calls: &[Call] = by_day.get(day as usize).map_or(&[], |v| v.as_slice());
        let mut rng = streams.stream(StreamKey::new(entity::CAMPUS, 0, TEST_SERVICE, day as u16));
        let r = q.push_day(day, (day % 7) as u8, calls, &mut rng).unwrap();
        outcomes.extend(r.outcomes);
        if day + 1 >= days && q.waiting().len() == 0 {
            break;
        }
    }
    let warm = SimTime::start_of_day(1);
    let mut kept: Vec<_> = outcomes.into_iter().filter(|o| o.call.at >= warm).collect();
    kept.sort_by_key(|o| o.call.at);
    kept
}

/// Mean of `f` over the calls and its standard error by batch means: the calls are cut
/// into 20 consecutive batches of equal count, and the spread of the 20 batch means gives
/// the standard error (successive waits are correlated, single calls are not independent
/// samples; batches of ~1,000 simulated hours, hundreds of relaxation times, nearly are).
fn batch_mean(calls: &[CallOutcome], f: impl Fn(&CallOutcome) -> f64) -> (f64, f64) {
    const BATCHES: usize = 20;
    let size = calls.len() / BATCHES;
    let means: Vec<f64> =
        calls.chunks_exact(size).take(BATCHES).map(|b| b.iter().map(&f).sum::<f64>() / size as f64).collect();
    let m = means.iter().sum::<f64>() / BATCHES as f64;
    let var = means.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (BATCHES - 1) as f64;
    (m, (var / BATCHES as f64).sqrt())
}

/// Tolerance: each simulated statistic must lie within 4 batch-means standard errors of
/// Erlang C (with 20 batches the standardised error is t-distributed with 19 degrees of
/// freedom, so a correct simulator misses one such bound with probability ~8e-4; the run is
/// seeded, so the test is deterministic). So that the bound has teeth, the standard errors
/// must also be small: < 3% of the value for the probability of waiting, < 4%
/// for the mean wait, < 5% for the tail. That needs 20,000 simulated hours per case (600,000 calls at A = 2.5;
/// 2,000 h leave the mean wait at c = 3 with an 8% standard error).
#[test]
fn simulated_queue_agrees_with_erlang_c_at_stationary_load() {
    // (agents, calls per hour): A = 2.5 with c = 3..6, then heavier: A = 8 on 10 agents
    // (rho 0.8) and A = 9 on 10 (rho 0.9).
    let cases = [(3, 30.0), (4, 30.0), (5, 30.0), (6, 30.0), (10, 96.0), (10, 108.0)];
    let days = 834; // 20,016 simulated hours
    for (i, (c, rate_per_h)) in cases.into_iter().enumerate() {
        let lambda = rate_per_h / 3600.0;
        let a = lambda * FIVE_MIN.as_secs_f64();
        let want_c = erlang_c(c, a);
        let want_w = mean_wait(c, lambda, FIVE_MIN).unwrap().as_secs_f64();
        // The p90 and the tail there: P(W > p90) = 0.1, or C when fewer than 10% wait.
        let p90 = wait_quantile(c, lambda, FIVE_MIN, 0.9).unwrap();
        let want_tail = wait_tail(c, lambda, FIVE_MIN, p90).unwrap();
        let calls = stationary_run(c, rate_per_h, days, 1000 + i as u64);
        let (p_wait, p_wait_se) = batch_mean(&calls, |o| f64::from(u8::from(!o.wait.is_zero())));
        let (w, w_se) = batch_mean(&calls, |o| o.wait.as_secs_f64());
        let (tail, tail_se) = batch_mean(&calls, |o| f64::from(u8::from(o.wait > p90)));
        eprintln!(
            "c={c} A={a:.1} ({} calls): P(wait) sim {p_wait:.4} +- {p_wait_se:.4} vs Erlang C {want_c:.4} | \
             mean wait sim {w:.2} s +- {w_se:.2} vs {want_w:.2} s | P(W > p90 = {:.1} s) sim {tail:.4} +- {tail_se:.4} vs {want_tail:.4}",
            calls.len(),
            p90.as_secs_f64()
        );
        assert!((p_wait - want_c).abs() <= 4.0 * p_wait_se, "c={c} A={a}: P(wait)");
        assert!((w - want_w).abs() <= 4.0 * w_se, "c={c} A={a}: mean wait");
        assert!((tail - want_tail).abs() <= 4.0 * tail_se, "c={c} A={a}: tail at the p90");
        assert!(p_wait_se < 0.03 * want_c, "c={c} A={a}: P(wait) standard error too large to judge");
        assert!(w_se < 0.04 * want_w, "c={c} A={a}: mean-wait standard error too large to judge");
        assert!(tail_se < 0.05 * want_tail, "c={c} A={a}: tail standard error too large to judge");
    }
}

// ---------------------------------------------------------------------------------------
// Opening hours, carry-over, conservation
// ---------------------------------------------------------------------------------------

#[test]
fn a_night_call_waits_until_opening() {
    let mut q = HelpdeskQueue::new(params(3, 0, 8, 18));
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let call = Call { at: at(0, 3, 0), cause: Cause::IpsecBlocked, user: Some(UserId(42)) };
    let r = q.push_day(0, 0, &[call], &mut rng).unwrap();
    assert_eq!(r.answered, 1);
    assert_eq!(r.outcomes[0].start, at(0, 8, 0));
    assert_eq!(r.outcomes[0].wait, SimDuration::from_hours(5));
    assert_eq!(r.outcomes[0].call, call);
    assert_eq!(r.calls[Cause::IpsecBlocked], 1);
    assert_eq!((r.total_calls(), r.ipsec_calls()), (1, 1));
    assert_eq!(r.p90_wait, Some(SimDuration::from_hours(5)));
    assert_eq!(r.agents, 3);
    assert_eq!(r.available, SimDuration::from_hours(30));
}

#[test]
fn calls_queued_at_closing_carry_over_to_the_next_opening() {
    let mut q = HelpdeskQueue::new(params(1, 0, 8, 18));
    // Friday 17:30: six 15-minute calls on one agent; two fit before closing, the rest
    // wait over the weekend (no weekend agents) until Monday 08:00.
    let calls: Vec<Call> = (0..6).map(|_| Call { at: at(4, 17, 30), cause: Cause::Firewall, user: None }).collect();
    let quarter = |_: &Call| SimDuration::from_mins(15);
    let fri = q.push_day_with(4, 4, &calls, quarter).unwrap();
    assert_eq!((fri.answered, fri.waiting_at_close), (2, 4));
    assert_eq!(fri.oldest_waiting, Some(SimDuration::from_mins(390)));
    let sat = q.push_day_with(5, 5, &[], quarter).unwrap();
    let sun = q.push_day_with(6, 6, &[], quarter).unwrap();
    for r in [&sat, &sun] {
        assert_eq!((r.agents, r.answered, r.waiting_at_close, r.occupancy()), (0, 0, 4, None));
    }
    assert_eq!(sun.oldest_waiting, Some(SimDuration::from_hours(54) + SimDuration::from_mins(30)));
    let mon = q.push_day_with(7, 0, &[Call { at: at(7, 7, 0), cause: Cause::Other, user: None }], quarter).unwrap();
    // Friday's four go first (FCFS), then Monday's 07:00 call.
    assert_eq!(mon.answered, 5);
    let starts: Vec<SimTime> = mon.outcomes.iter().map(|o| o.start).collect();
    assert_eq!(starts, [at(7, 8, 0), at(7, 8, 15), at(7, 8, 30), at(7, 8, 45), at(7, 9, 0)]);
    assert!(mon.outcomes[..4].iter().all(|o| o.call.cause == Cause::Firewall));
    assert_eq!(mon.max_wait, Some(SimDuration::from_hours(63) + SimDuration::from_mins(15)));
    assert_eq!(mon.busy, SimDuration::from_mins(75));
    assert_eq!(q.waiting().len(), 0);
}

/// A random month of overloaded mornings and closed weekends: every pushed call is answered
/// exactly once, FCFS holds across days, no call starts outside opening hours or before it
/// arrived, occupancy stays in [0, 1], and the run is reproducible.
#[test]
fn no_call_is_lost_over_a_run_and_runs_repeat() {
    let run = || -> Vec<DayReport> {
        let mut p = params(4, 0, 8, 18);
        p.baseline_calls_per_month = 12_000.0; // more than 4 agents can take in 10 h on busy days
        p.weekend_factor = 0.3;
        let streams = RngStreams::new(99);
        let mut q = HelpdeskQueue::new(p.clone());
        let mut reports = Vec::new();
        for day in 0..60u32 {
            let weekday = (day % 7) as u8;
            let calls = if day < 45 {
                let mut rng = streams.stream(StreamKey::new(entity::CAMPUS, 0, TEST_ARRIVALS, day as u16));
                let mut calls = baseline_calls(day, weekday, &p, &mut rng);
                // Add some night calls (they wait for the opening).
                calls.push(Call { at: at(day, 2, 0), cause: Cause::NapBlocked, user: Some(UserId(day)) });
                calls
            } else {
                Vec::new()
            };
            let mut rng = streams.stream(StreamKey::new(entity::CAMPUS, 0, TEST_SERVICE, day as u16));
            reports.push(q.push_day(day, weekday, &calls, &mut rng).unwrap());
        }
        assert_eq!(q.waiting().len(), 0, "drained after 15 empty days");
        reports
    };
    let reports = run();
    let pushed: u32 = reports.iter().map(|r| r.total_calls()).sum();
    let answered: u32 = reports.iter().map(|r| r.answered).sum();
    assert!(pushed > 10_000, "{pushed}");
    assert_eq!(answered, pushed);
    assert!(reports.iter().any(|r| r.waiting_at_close > 0), "the load should carry calls over");
    let p = params(4, 0, 8, 18);
    let mut last_arrival = SimTime::ZERO;
    for r in &reports {
        assert_eq!(r.answered as usize, r.outcomes.len());
        if let Some(occ) = r.occupancy() {
            assert!((0.0..=1.0).contains(&occ), "day {}: occupancy {occ}", r.day);
        }
        let window = p.open_window(r.day).unwrap();
        for o in &r.outcomes {
            assert!(o.start >= window.0 && o.start < window.1, "started outside hours: {}", o.start);
            assert_eq!(o.start - o.call.at, o.wait);
            assert!(o.call.at >= last_arrival, "FCFS across days");
            last_arrival = o.call.at;
        }
    }
    assert_eq!(reports, run(), "same streams, same reports");
}

// ---------------------------------------------------------------------------------------
// Baseline calls
// ---------------------------------------------------------------------------------------

/// 514 whole weeks (3,598 days, ~120 months) from a Monday. The monthly count is Poisson
/// (variance = mean = 7,000), so the mean over 119.9 months has a standard deviation of
/// sqrt(7000 / 119.9) = 7.6 calls: the 0.5% tolerance (35 calls) is 4.6 standard deviations.
#[test]
fn baseline_is_about_7000_calls_a_month_in_opening_hours_only() {
    let p = params(20, 4, 8, 18);
    let streams = RngStreams::new(2008);
    let days = 514 * 7;
    let mut total = 0usize;
    let mut by_hour = [0usize; 24];
    let (mut weekday_calls, mut weekend_calls) = (0usize, 0usize);
    for day in 0..days {
        let weekday = (day % 7) as u8;
        let mut rng = streams.stream(StreamKey::new(entity::CAMPUS, 0, TEST_ARRIVALS, day as u16));
        let calls = baseline_calls(day, weekday, &p, &mut rng);
        let (open, close) = p.open_window(day).unwrap();
        assert!(calls.windows(2).all(|w| w[0].at <= w[1].at), "sorted");
        for c in &calls {
            assert!(c.at >= open && c.at < close, "call at {} outside opening hours", c.at);
            assert_eq!((c.cause, c.user), (Cause::Other, None));
            by_hour[(c.at.time_of_day().as_nanos() / SimDuration::HOUR.as_nanos()) as usize] += 1;
        }
        total += calls.len();
        if weekday >= 5 {
            weekend_calls += calls.len();
        } else {
            weekday_calls += calls.len();
        }
    }
    let months = f64::from(days) / 30.0;
    let per_month = total as f64 / months;
    eprintln!("baseline: {per_month:.1} calls per 30-day month over {months:.1} months");
    assert!((per_month - 7000.0).abs() < 35.0, "{per_month}");
    // Weekend days get 0.15 of a weekday: per-day ratio within a few percent.
    let ratio = (weekend_calls as f64 / 2.0) / (weekday_calls as f64 / 5.0);
    assert!((ratio - 0.15).abs() < 0.005, "weekend ratio {ratio}");
    // The profile shapes the day: 10:00 (weight 1.4) against 17:00 (0.6), both open.
    let shape = by_hour[10] as f64 / by_hour[17] as f64;
    assert!((shape - 1.4 / 0.6).abs() < 0.05, "hour shape {shape}");
    assert!(by_hour[..8].iter().chain(&by_hour[18..]).all(|&n| n == 0));
}

#[test]
fn baseline_respects_partial_hours_and_closed_days() {
    let mut p = params(5, 0, 8, 18);
    p.open = SimDuration::from_mins(8 * 60 + 30);
    p.close = SimDuration::from_mins(17 * 60 + 15);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for day in 0..200 {
        for c in baseline_calls(day, (day % 7) as u8, &p, &mut rng) {
            let tod = c.at.time_of_day();
            assert!(tod >= p.open && tod < p.close, "{}", c.at);
        }
    }
    p.close = p.open; // never open
    assert!(baseline_calls(3, 3, &p, &mut rng).is_empty());
    let mut p = params(5, 0, 8, 18);
    p.hourly_profile = [0.0; 24];
    assert!(baseline_calls(3, 3, &p, &mut rng).is_empty());
    p.hourly_profile = [f64::NAN; 24];
    assert!(baseline_calls(3, 3, &p, &mut rng).is_empty());
}

// ---------------------------------------------------------------------------------------
// Call propensity
// ---------------------------------------------------------------------------------------

fn propensity() -> Propensity {
    let mut base = PerCause::splat(0.02);
    base[Cause::IpsecBlocked] = 0.3;
    base[Cause::NapNotice] = 0.1;
    Propensity { base, inconsistent: 3.0, unannounced: 2.0, trained: 0.5, repeat: 0.25 }
}

#[test]
fn propensity_multipliers_point_the_right_way() {
    let p = propensity();
    for cause in Cause::ALL {
        let base = call_probability(
            cause,
            Circumstances { inconsistent: false, announced: true, trained: false, repeated: false },
            &p,
        );
        assert_eq!(base, p.base[cause]);
        assert!(
            call_probability(
                cause,
                Circumstances { inconsistent: true, announced: true, trained: false, repeated: false },
                &p
            ) > base,
            "inconsistency raises {cause:?}"
        );
        assert!(
            call_probability(
                cause,
                Circumstances { inconsistent: false, announced: false, trained: false, repeated: false },
                &p
            ) > base,
            "no announcement raises {cause:?}"
        );
        assert!(
            call_probability(
                cause,
                Circumstances { inconsistent: false, announced: true, trained: true, repeated: false },
                &p
            ) < base,
            "training lowers {cause:?}"
        );
        // Announcing lowers, whatever else holds.
        for (inc, tr) in [(false, false), (true, false), (false, true), (true, true)] {
            assert!(
                call_probability(
                    cause,
                    Circumstances { inconsistent: inc, announced: true, trained: tr, repeated: false },
                    &p
                ) <= call_probability(
                    cause,
                    Circumstances { inconsistent: inc, announced: false, trained: tr, repeated: false },
                    &p
                )
            );
        }
    }
    let x = call_probability(
        Cause::NapNotice,
        Circumstances { inconsistent: true, announced: false, trained: true, repeated: false },
        &p,
    );
    assert!((x - 0.1 * 3.0 * 2.0 * 0.5).abs() < 1e-12);
    // Meeting the same failure again makes a call less likely, by the repeat factor.
    let again = call_probability(
        Cause::NapNotice,
        Circumstances { inconsistent: true, announced: false, trained: true, repeated: true },
        &p,
    );
    assert!((again - x * 0.25).abs() < 1e-12, "{again}");
}

#[test]
fn propensity_is_clamped_to_a_probability() {
    let p = propensity();
    // 0.3 x 3 x 2 = 1.8 -> 1.
    assert_eq!(
        call_probability(
            Cause::IpsecBlocked,
            Circumstances { inconsistent: true, announced: false, trained: false, repeated: false },
            &p
        ),
        1.0
    );
    let mut odd = propensity();
    odd.base[Cause::Firewall] = -0.2;
    odd.base[Cause::Other] = f64::NAN;
    odd.inconsistent = f64::INFINITY;
    for (inc, ann, tr) in [(false, true, false), (true, false, true), (true, true, true)] {
        assert_eq!(
            call_probability(
                Cause::Firewall,
                Circumstances { inconsistent: inc, announced: ann, trained: tr, repeated: false },
                &odd
            ),
            0.0
        );
        assert_eq!(
            call_probability(
                Cause::Other,
                Circumstances { inconsistent: inc, announced: ann, trained: tr, repeated: false },
                &odd
            ),
            0.0
        );
        let x = call_probability(
            Cause::IpsecDelay,
            Circumstances { inconsistent: inc, announced: ann, trained: tr, repeated: false },
            &odd,
        );
        assert!((0.0..=1.0).contains(&x), "{x}");
    }
}
