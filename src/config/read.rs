//! Reading the files a configuration names — the services file, an
//! `env_file`, a `token_file` — without letting one hang or swamp the
//! reader: only a regular file is read (a FIFO nobody writes, `/dev/zero`
//! or a terminal is refused, without blocking on it), and at most
//! [`MAX_FILE`] bytes of it.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest configuration file read: a services file of 10,000
/// services with probes is a few MiB.
pub const MAX_FILE: u64 = 32 << 20;

/// The whole of `path` as text, if it is a regular file of at most
/// [`MAX_FILE`] bytes.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        // Opening a FIFO with no writer returns at once instead of waiting.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_FILE {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut file).take(MAX_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(too_large());
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"))
}

fn too_large() -> std::io::Error {
    std::io::Error::other(format!("larger than {} MiB", MAX_FILE >> 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok.yaml");
        std::fs::write(&ok, "services: {}\n").unwrap();
        assert_eq!(read_text(&ok).unwrap(), "services: {}\n");
        let e = read_text(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.to_string(), "not a regular file");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(
            read_text(&fifo).unwrap_err().to_string(),
            "not a regular file"
        );
        let big = dir.path().join("big");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_FILE + 1).unwrap();
        assert_eq!(
            read_text(&big).unwrap_err().to_string(),
            "larger than 32 MiB"
        );
        assert!(read_text(dir.path()).is_err());
    }
}
