//! Integrity of a run directory: every file its `manifest.json` lists is there with the
//! listed size and sha256, and nothing else is (`domiso check`).
//!
//! Contract:
//! - Each file the manifest lists is `ok`, `missing`, `truncated` (shorter than listed),
//!   `size differs` (longer), or `tampered` (the listed size but another digest). Manifests
//!   written before `sizes` existed are checked by digest alone (`tampered`).
//! - Every other regular file under the directory, `manifest.json` itself aside, is
//!   `unlisted`.
//! - A manifest that cannot be read or parsed, lacks `files`, or lists a name outside the
//!   directory is an input error naming the manifest; so is a listed file that exists but
//!   cannot be read. Problems with the files themselves are findings, not errors.
//! - Reads only.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::writer::{list_files, sha256_hex};

#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    #[error("{path}: {message}")]
    Input { path: String, message: String },
}

fn input(path: &Path, message: impl ToString) -> IntegrityError {
    IntegrityError::Input { path: path.display().to_string(), message: message.to_string() }
}

/// The part of `manifest.json` that integrity needs; other keys are ignored.
#[derive(Debug, Deserialize)]
struct ManifestFiles {
    files: BTreeMap<String, String>,
    #[serde(default)]
    sizes: Option<BTreeMap<String, u64>>,
}

/// What is wrong with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing,
    Truncated { listed: u64, found: u64 },
    SizeDiffers { listed: u64, found: u64 },
    Tampered,
    Unlisted,
}

impl Problem {
    pub fn describe(&self) -> String {
        match self {
            Problem::Missing => "missing: listed in manifest.json but not in the directory".into(),
            Problem::Truncated { listed, found } => {
                format!("truncated: {found} bytes, manifest.json lists {listed}")
            }
            Problem::SizeDiffers { listed, found } => {
                format!("size differs: {found} bytes, manifest.json lists {listed}")
            }
            Problem::Tampered => "tampered: sha256 differs from manifest.json".into(),
            Problem::Unlisted => "unlisted: present but not in manifest.json".into(),
        }
    }
}

/// One file's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// Path relative to the directory, `/`-separated.
    pub file: String,
    pub problem: Option<Problem>,
}

/// The integrity of one run directory.
#[derive(Debug, Clone)]
pub struct Integrity {
    pub dir: PathBuf,
    pub files: Vec<FileCheck>,
}

impl Integrity {
    pub fn failures(&self) -> usize {
        self.files.iter().filter(|f| f.problem.is_some()).count()
    }
}

/// A listed name must stay inside the directory: no absolute paths, no `..`.
fn inside(name: &str) -> bool {
    !name.is_empty() && Path::new(name).components().all(|c| matches!(c, Component::Normal(_)))
}

/// Verifies `dir` against its `manifest.json`.
pub fn verify(dir: &Path) -> Result<Integrity, IntegrityError> {
    let manifest_path = dir.join("manifest.json");
    let bytes = std::fs::read(&manifest_path).map_err(|e| input(&manifest_path, format!("cannot read: {e}")))?;
    let manifest: ManifestFiles =
        serde_json::from_slice(&bytes).map_err(|e| input(&manifest_path, format!("not a valid run manifest: {e}")))?;
    if let Some(bad) = manifest.files.keys().find(|n| !inside(n) || n.as_str() == "manifest.json") {
        return Err(input(&manifest_path, format!("files: {bad:?} is not a file of the run directory")));
    }
    let mut files = Vec::new();
    for (name, digest) in &manifest.files {
        let path = dir.join(name);
        let problem = if !path.is_file() {
            Some(Problem::Missing)
        } else {
            let found = std::fs::read(&path).map_err(|e| input(&path, format!("cannot read: {e}")))?;
            let size = found.len() as u64;
            match manifest.sizes.as_ref().and_then(|s| s.get(name)) {
                Some(&listed) if size < listed => Some(Problem::Truncated { listed, found: size }),
                Some(&listed) if size > listed => Some(Problem::SizeDiffers { listed, found: size }),
                _ => (sha256_hex(&found) != digest.to_ascii_lowercase()).then_some(Problem::Tampered),
            }
        };
        files.push(FileCheck { file: name.clone(), problem });
    }
    let present = list_files(dir).map_err(|e| input(dir, format!("cannot list: {e}")))?;
    for name in present.into_keys() {
        if name != "manifest.json" && !manifest.files.contains_key(&name) {
            files.push(FileCheck { file: name, problem: Some(Problem::Unlisted) });
        }
    }
    Ok(Integrity { dir: dir.to_path_buf(), files })
}

/// The report for a terminal: each problem (every file with `verbose`), then a verdict line.
pub fn render_text(i: &Integrity, verbose: bool) -> String {
    let mut out = String::new();
    for f in &i.files {
        match &f.problem {
            Some(p) => out.push_str(&format!("FAIL    {}: {}\n", i.dir.join(&f.file).display(), p.describe())),
            None if verbose => out.push_str(&format!("ok      {}\n", i.dir.join(&f.file).display())),
            None => {}
        }
    }
    let bad = i.failures();
    if bad == 0 {
        out.push_str(&format!("integrity ok: {}: {} file(s) match manifest.json\n", i.dir.display(), i.files.len()));
    } else {
        out.push_str(&format!("integrity FAILED: {}: {bad} problem(s)\n", i.dir.display()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_outside_the_directory_are_refused() {
        assert!(inside("timeline.csv") && inside("plots/a.svg"));
        assert!(!inside("../x") && !inside("/etc/passwd") && !inside("") && !inside("plots/../../x"));
    }
}
