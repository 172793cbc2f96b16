//! Reading the files a user hands domiso (scenarios, the bases they extend, sweep files)
//! with a size limit, so that `extends = "/dev/zero"` or a mistyped path to a huge file is
//! an input error after reading [`MAX_FILE_BYTES`], not an out-of-memory crash or a read
//! that never ends.
//!
//! Contract: at most `MAX_FILE_BYTES + 1` bytes are read from any file; a longer file is an
//! `io::Error` of kind `InvalidData` whose message states the limit. Pipes and character
//! devices are read the same way (`domiso validate /dev/stdin` keeps working).

use std::io::Read;
use std::path::Path;

/// The largest scenario or sweep file accepted: 4 MiB, about 70 times the white-paper
/// scenario (the largest shipped, 1,000 lines).
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// The bytes of `path`, refusing files larger than [`MAX_FILE_BYTES`].
pub fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than the limit of {} MiB for a scenario or sweep file", MAX_FILE_BYTES >> 20),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_and_missing_files_are_errors() {
        let e = read_bounded(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("4 MiB"), "{e}");
        assert!(read_bounded(Path::new("/no/such/file")).is_err());
        assert_eq!(read_bounded(Path::new("/dev/null")).unwrap(), Vec::<u8>::new());
    }
}
