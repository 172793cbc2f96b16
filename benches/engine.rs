//! Criterion benches of the event queue on the "hold" workload (see `domiso::bench`): domiso's
//! `EventQueue` against `std::collections::BinaryHeap` and the `radix-heap` crate, at 10k and
//! 1M pending events, with the same pre-generated increments for all three.
//!
//! Each queue is filled and warmed up once outside the measurement; every iteration then does
//! `OPS_PER_ITER` hold operations on that persistent queue (hold keeps the pending count
//! constant, so iterations are statistically alike). Throughput is reported in events.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use domiso::bench::{HoldPayload, HoldQueue, HoldRun, Increments, RadixHeap, StdBinaryHeap, hold_increments};
use domiso::engine::EventQueue;

const OPS_PER_ITER: u64 = 10_000;

fn bench_queue<Q: HoldQueue>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    pending: usize,
    incs: &[u64],
) {
    let mut run = HoldRun::<Q>::fill(pending, incs);
    run.steps(pending as u64);
    group.bench_function(BenchmarkId::new(name, pending), |b| {
        b.iter(|| {
            run.steps(OPS_PER_ITER);
            black_box(run.checksum)
        })
    });
}

fn hold(c: &mut Criterion) {
    for pending in [10_000usize, 1_000_000] {
        let incs = hold_increments(pending * 4, 1, Increments::DEFAULT);
        let mut group = c.benchmark_group("hold");
        group.throughput(Throughput::Elements(OPS_PER_ITER));
        if pending >= 1_000_000 {
            group.sample_size(20).measurement_time(Duration::from_secs(8));
        }
        bench_queue::<EventQueue<HoldPayload>>(&mut group, "domiso", pending, &incs);
        bench_queue::<StdBinaryHeap>(&mut group, "std_binary_heap", pending, &incs);
        bench_queue::<RadixHeap>(&mut group, "radix_heap", pending, &incs);
        group.finish();
    }
}

// No HTML plots: plotters here is built with the embedded-font backend (for domiso's own
// charts), and criterion's plots would look for system fonts that a build machine may lack.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = hold
}
criterion_main!(benches);
