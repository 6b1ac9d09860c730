//! Files only the broker's own user may read: the data dir (0700) and what it writes there
//! (0600), whatever the process umask. The database holds password hashes and transcripts, the
//! outbox set-password links and login codes.

use std::{io::Write, path::Path};

/// Creates `dir` (and its parents) and makes it 0700, also when it existed already.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    restrict(dir, 0o700)
}

/// Makes an existing file 0600.
pub fn restrict_file(file: &Path) -> std::io::Result<()> {
    restrict(file, 0o600)
}

/// Writes `bytes` to a new file that is 0600 from its first byte (no window where it is
/// readable by others), replacing one left over.
pub fn write_private(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(file)?;
    // A file left over from before keeps its old mode through `open`: set it.
    restrict_file(file)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// `write_private` off the async runtime's threads.
pub async fn write_private_async(file: std::path::PathBuf, bytes: Vec<u8>) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || write_private(&file, &bytes))
        .await
        .map_err(std::io::Error::other)?
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_dir_and_the_files_are_the_owners_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        create_private_dir(&dir).unwrap();
        let file = dir.join("x");
        write_private(&file, b"secret").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"secret");
    }
}
