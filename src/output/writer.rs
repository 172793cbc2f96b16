//! The run directory: files are assembled in memory, then written to a temporary sibling
//! directory and renamed into place, so a reader (or a killed run) sees the whole previous
//! directory or the whole new one, never a mix or a half-written file.
//!
//! Contract: `RunFiles::commit` either leaves `dir` holding exactly the new files and
//! returns `Ok`, or returns the I/O error with `dir` untouched. A process killed mid-write
//! (SIGKILL) leaves only a hidden temporary named after its process id, which the next
//! commit in the same parent directory removes once that process is gone.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Files of a run directory, by name, before they are written.
#[derive(Debug, Default)]
pub struct RunFiles {
    files: BTreeMap<String, Vec<u8>>,
}

impl RunFiles {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_bytes(&mut self, name: &str, bytes: Vec<u8>) {
        self.files.insert(name.to_string(), bytes);
    }

    /// Pretty JSON with a trailing newline.
    pub fn add_json<T: Serialize>(&mut self, name: &str, value: &T) -> io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
        bytes.push(b'\n');
        self.add_bytes(name, bytes);
        Ok(())
    }

    /// A CSV file with a header row taken from the struct's field names.
    pub fn add_csv<T: Serialize>(&mut self, name: &str, rows: &[T]) -> io::Result<()> {
        let mut w = csv::Writer::from_writer(Vec::new());
        for r in rows {
            w.serialize(r).map_err(io::Error::other)?;
        }
        let bytes = w.into_inner().map_err(|e| io::Error::other(e.to_string()))?;
        self.add_bytes(name, bytes);
        Ok(())
    }

    /// A CSV file from an explicit header and string records (for scenario-dependent columns).
    pub fn add_csv_records(
        &mut self,
        name: &str,
        header: &[String],
        rows: impl IntoIterator<Item = Vec<String>>,
    ) -> io::Result<()> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(header).map_err(io::Error::other)?;
        for r in rows {
            w.write_record(&r).map_err(io::Error::other)?;
        }
        let bytes = w.into_inner().map_err(|e| io::Error::other(e.to_string()))?;
        self.add_bytes(name, bytes);
        Ok(())
    }

    /// sha256 (hex) of each file added so far.
    pub fn digests(&self) -> BTreeMap<String, String> {
        self.files.iter().map(|(name, bytes)| (name.clone(), sha256_hex(bytes))).collect()
    }

    /// Size in bytes of each file added so far.
    pub fn sizes(&self) -> BTreeMap<String, u64> {
        self.files.iter().map(|(name, bytes)| (name.clone(), bytes.len() as u64)).collect()
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Writes all files into `dir`, replacing it as a whole.
    pub fn commit(&self, dir: &Path) -> io::Result<()> {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)?;
        let name = dir
            .file_name()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("{}: not a directory name", dir.display()))
            })?
            .to_string_lossy()
            .into_owned();
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir(&tmp)?;
        let written = (|| {
            for (file, bytes) in &self.files {
                let path = tmp.join(file);
                if let Some(p) = path.parent() {
                    std::fs::create_dir_all(p)?;
                }
                std::fs::write(&path, bytes)?;
                std::fs::File::open(&path)?.sync_all()?;
            }
            Ok::<(), io::Error>(())
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        replace_dir(&tmp, dir)?;
        remove_stale_temporaries(parent);
        Ok(())
    }
}

/// Removes, in `dir`, the temporaries (`*.tmp-PID`, `*.old-PID`, files or directories)
/// that a process killed while writing left behind: only those whose process is gone, so
/// a concurrent writer's are never touched. Linux only (it asks `/proc`); elsewhere it
/// leaves them. Failures are ignored: a leftover temporary is untidy, never a result.
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = temporary_pid(&name) else { continue };
        if pid != std::process::id() && Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let path = e.path();
            let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        }
    }
}

/// The writer's process id in a temporary's name (`.run.tmp-123`, `000004.tmp-123`,
/// `.run.old-123`).
fn temporary_pid(name: &str) -> Option<u32> {
    let (_, tail) = name.rsplit_once(".tmp-").or_else(|| name.rsplit_once(".old-"))?;
    tail.parse().ok()
}

/// Moves `new` to `dir`; an existing `dir` is moved aside first and deleted after. `new`
/// must be on the same file system as `dir` (a sibling), so each rename is atomic.
pub fn replace_dir(new: &Path, dir: &Path) -> io::Result<()> {
    if dir.exists() {
        let old: PathBuf = dir.with_file_name(format!(
            ".{}.old-{}",
            dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            std::process::id()
        ));
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(dir, &old)?;
        if let Err(e) = std::fs::rename(new, dir) {
            // Put the previous directory back so the caller loses nothing.
            let _ = std::fs::rename(&old, dir);
            return Err(e);
        }
        std::fs::remove_dir_all(&old)?;
        Ok(())
    } else {
        std::fs::rename(new, dir)
    }
}

/// Every regular file under `dir` (recursively), by its path relative to `dir` with `/`
/// separators (`plots/timeline.svg`): the names a manifest uses.
pub fn list_files(dir: &Path) -> io::Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let rel = path.strip_prefix(dir).map_err(io::Error::other)?;
                let name = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
                out.insert(name, path);
            }
        }
    }
    Ok(out)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Peak resident set size of this process (Linux `VmHWM`), if the platform tells.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time the calling thread has used so far, if the platform tells.
pub fn thread_cpu_s() -> Option<f64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    ok.then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_whole_directory() {
        let base = std::env::temp_dir().join(format!("domiso-writer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("run");
        let mut a = RunFiles::new();
        a.add_bytes("a.txt", b"one".to_vec());
        a.add_bytes("stale.txt", b"x".to_vec());
        a.commit(&dir).unwrap();
        let mut b = RunFiles::new();
        b.add_bytes("a.txt", b"two".to_vec());
        b.commit(&dir).unwrap();
        assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"two");
        assert!(!dir.join("stale.txt").exists(), "files of the previous run are gone");
        let leftovers: Vec<_> = std::fs::read_dir(&base).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "no temporary directories left: {leftovers:?}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed_and_live_ones_kept() {
        let base = std::env::temp_dir().join(format!("domiso-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        // A process id that cannot be alive (above Linux's pid_max limit of 2^22).
        let dead = 4_194_305u32;
        let me = std::process::id();
        std::fs::create_dir_all(base.join(format!(".run.tmp-{dead}")).join("plots")).unwrap();
        std::fs::write(base.join(format!("000001.tmp-{dead}")), b"{\"ha").unwrap();
        std::fs::create_dir_all(base.join(format!(".run.old-{dead}"))).unwrap();
        std::fs::write(base.join(format!("000002.tmp-{me}")), b"mine").unwrap();
        std::fs::write(base.join("000003.json"), b"{}").unwrap();
        remove_stale_temporaries(&base);
        let mut left: Vec<String> =
            std::fs::read_dir(&base).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        if Path::new("/proc/self").exists() {
            assert_eq!(left, vec!["000002.tmp-".to_string() + &me.to_string(), "000003.json".into()]);
        }
        assert_eq!(temporary_pid(".x.tmp-12"), Some(12));
        assert_eq!(temporary_pid("000004.tmp-7"), Some(7));
        assert_eq!(temporary_pid("plain.json"), None);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
