//! Bounded reads of the files scale is pointed at: the blueprint, its `.env`, a build
//! context's `.dockerignore` and files.
//!
//! A path can name anything: a FIFO (reading blocks until a writer comes, maybe never), a
//! device (`/dev/zero` never ends), a directory, or a symlink to any of those. So every read
//! here opens without blocking, checks on the open handle that it is a regular file (symlinks
//! are followed, and only a regular file at the end is accepted), and reads at most `limit`
//! bytes: the size bound is enforced while reading, not after, so a file that grows or lies
//! about its size cannot make scale read more.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The largest blueprint scale reads (no real blueprint comes close; 10,000 generated
/// services are 2.4 MB).
pub const MAX_BLUEPRINT_BYTES: u64 = 4 * 1024 * 1024;
/// The largest `.env` file (10,000 variables of 100 bytes fit).
pub const MAX_ENV_FILE_BYTES: u64 = 1024 * 1024;
/// The largest `.dockerignore`.
pub const MAX_DOCKERIGNORE_BYTES: u64 = 1024 * 1024;
/// The most a build context may hold in all its files together: it is sent to the engine
/// as one in-memory tar archive.
pub const MAX_BUILD_CONTEXT_BYTES: u64 = 512 * 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no such file")]
    NotFound,
    #[error("it is {what}, not a regular file")]
    NotRegular { what: &'static str },
    #[error("it is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Io(io::Error),
}

impl ReadError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            ReadError::NotFound => "check the path",
            ReadError::NotRegular { .. } => "point scale at a regular file (a symlink is fine if it leads to one)",
            ReadError::TooLarge { .. } => "this is not a file scale expects to be this large; check the path",
            ReadError::Io(err) if err.kind() == io::ErrorKind::PermissionDenied => "check the file's permissions",
            ReadError::Io(_) => "check that the path names a readable file",
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::NotFound { ReadError::NotFound } else { ReadError::Io(err) }
    }
}

/// Opens `path` for reading if it is (or a symlink leads to) a regular file, without ever
/// blocking on a FIFO.
pub fn open_regular(path: &Path) -> Result<File, ReadError> {
    let file = open_nonblocking(path)?;
    let file_type = file.metadata()?.file_type();
    if !file_type.is_file() {
        return Err(ReadError::NotRegular { what: describe(&file_type) });
    }
    Ok(file)
}

/// Reads a whole regular file of at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(bytes)
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting. It has
    // no effect on reads of regular files, the only ones we go on to read.
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    File::open(path)
}

fn describe(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() { "a directory" } else { "not a regular file" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_regular_file_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_bounded(&path, 5).unwrap(), b"12345");
        assert!(matches!(read_bounded(&path, 4), Err(ReadError::TooLarge { limit: 4 })));
    }

    #[test]
    fn refuses_devices_directories_and_fifos_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_bounded(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular { what: "a device" }), "{err:?}");
        let err = read_bounded(dir.path(), 10).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular { what: "a directory" }), "{err:?}");
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
        assert!(status.success());
        let err = read_bounded(&fifo, 10).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular { what: "a FIFO (named pipe)" }), "{err:?}");
    }

    #[cfg(unix)]
    #[test]
    fn follows_symlinks_only_to_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"ok").unwrap();
        let good = dir.path().join("good");
        std::os::unix::fs::symlink(&target, &good).unwrap();
        assert_eq!(read_bounded(&good, 10).unwrap(), b"ok");
        let bad = dir.path().join("bad");
        std::os::unix::fs::symlink("/dev/zero", &bad).unwrap();
        assert!(matches!(read_bounded(&bad, 10), Err(ReadError::NotRegular { .. })));
        assert!(matches!(read_bounded(&dir.path().join("missing"), 10), Err(ReadError::NotFound)));
    }
}
