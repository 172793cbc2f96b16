//! `domiso run --check-determinism`: the same run executed twice, into two hidden sibling
//! directories of the requested run directory (and two hidden siblings of the `--pcap`
//! file), and compared file by file (`output::determinism`).
//!
//! Contract:
//! - Both runs are [`run::execute`] with the same request but for where they write, so the
//!   check covers exactly what a normal run writes, through the same atomic commit.
//! - The first run draws its sessions ahead on a second thread (as `domiso run`
//!   does); the second draws them inline, inside a one-thread rayon pool. So the check
//!   compares a parallel run with a serial one, and would catch any part of a run whose
//!   result depended on how it was spread over threads.
//! - When every file is the same (measurements aside), the first run's directory is renamed
//!   into place as the run directory (atomically replacing an old one, as a normal run
//!   does) and its capture renamed onto the `--pcap` path. Otherwise nothing is written
//!   there. Either way the temporaries are removed.

use std::path::{Path, PathBuf};

use crate::output::determinism::{self, Comparison};
use crate::output::writer::replace_dir;
use crate::run::{self, RunError, RunOutcome, RunRequest};

/// What the check found: the comparison, and the committed run when the two runs agreed.
pub struct Checked {
    pub comparison: Comparison,
    pub outcome: Option<RunOutcome>,
}

/// Paths removed when dropped: the temporaries of the two runs, whatever happens.
struct Scratch(Vec<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = if p.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) };
        }
    }
}

/// A hidden sibling of `path` for run `k`: `.NAME.determinism-K.tmp-PID` (a temporary by
/// the writer's convention, so one left by a killed check is removed by a later run).
fn sibling(path: &Path, k: u32) -> Result<PathBuf, RunError> {
    let name = path.file_name().ok_or_else(|| RunError::Write {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file or directory name"),
    })?;
    Ok(path.with_file_name(format!(".{}.determinism-{k}.tmp-{}", name.to_string_lossy(), std::process::id())))
}

/// Runs `req` twice and compares the outputs. `progress` gets the fraction of both runs
/// done (`Send`: the second run calls it from the one-thread pool).
pub fn execute_twice(req: &RunRequest, progress: &mut (dyn FnMut(f64) + Send)) -> Result<Checked, RunError> {
    run_twice(req, progress)?.finish()
}

/// Two finished runs in their temporaries, not yet compared. Dropping it removes them.
pub struct TwoRuns<'a> {
    req: &'a RunRequest<'a>,
    runs: Vec<(RunRequest<'a>, RunOutcome)>,
    _scratch: Scratch,
}

/// The two runs of [`execute_twice`], left in their temporaries.
pub fn run_twice<'a>(req: &'a RunRequest<'a>, progress: &mut (dyn FnMut(f64) + Send)) -> Result<TwoRuns<'a>, RunError> {
    let mut scratch = Scratch(Vec::new());
    let mut runs = Vec::new();
    for k in 1..=2u32 {
        let out = sibling(&req.out, k)?;
        let pcap = req.pcap.as_deref().map(|p| sibling(p, k)).transpose()?;
        // Registered before the run, so a failed run leaves nothing behind either.
        scratch.0.push(out.clone());
        scratch.0.extend(pcap.clone());
        // The second run also draws its sessions inline, on the loop's thread, instead of
        // a window ahead on another: one thread in all, against the first run's several.
        let draw_ahead = req.draw_ahead && k == 1;
        let this = RunRequest { out, pcap, draw_ahead, ..*req };
        let base = f64::from(k - 1) / 2.0;
        let mut half = |f: f64| progress(base + f / 2.0);
        let outcome = if k == 1 {
            run::execute(&this, &mut half)?
        } else {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().map_err(|e| RunError::Write {
                path: this.out.display().to_string(),
                source: std::io::Error::other(e),
            })?;
            pool.install(|| run::execute(&this, &mut half))?
        };
        runs.push((this, outcome));
    }
    Ok(TwoRuns { req, runs, _scratch: scratch })
}

impl TwoRuns<'_> {
    /// The run directories of the first and the second run.
    pub fn dirs(&self) -> (&Path, &Path) {
        (&self.runs[0].0.out, &self.runs[1].0.out)
    }

    /// Compares the two runs; commits the first as the run directory (and capture) when
    /// they agree. The temporaries are gone afterwards either way.
    pub fn finish(mut self) -> Result<Checked, RunError> {
        let req = self.req;
        let read = |p: &Path| {
            determinism::read_dir(p).map_err(|source| RunError::Read { path: p.display().to_string(), source })
        };
        let (first, second) = (&self.runs[0].0, &self.runs[1].0);
        let mut comparison = determinism::compare(&read(&first.out)?, &read(&second.out)?);
        if let (Some(a), Some(b), Some(shown)) = (&first.pcap, &second.pcap, &req.pcap) {
            let bytes =
                |p: &Path| std::fs::read(p).map_err(|source| RunError::Read { path: p.display().to_string(), source });
            comparison.add_file(&shown.display().to_string(), &bytes(a)?, &bytes(b)?);
        }
        if !comparison.identical() {
            return Ok(Checked { comparison, outcome: None });
        }
        let (first, mut outcome) = self.runs.swap_remove(0);
        replace_dir(&first.out, &req.out)
            .map_err(|source| RunError::Write { path: req.out.display().to_string(), source })?;
        outcome.dir = req.out.clone();
        if let (Some(tmp), Some(path), Some((shown, _))) = (&first.pcap, &req.pcap, outcome.pcap.as_mut()) {
            std::fs::rename(tmp, path).map_err(|source| RunError::Pcap { path: path.display().to_string(), source })?;
            *shown = path.clone();
        }
        Ok(Checked { comparison, outcome: Some(outcome) })
    }
}
