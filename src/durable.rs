//! Replacing a file durably: the whole new content goes to a temporary file beside it, is
//! fsynced and renamed over the old one, then the directory is fsynced. A crash leaves the old
//! file or the new one, never a mix. Config rewrites, ACL files and nodes.conf (when an epoch
//! moved) use it.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `content`.
///
/// # Errors
/// The step that failed; the temporary file is removed then.
pub(crate) fn replace(path: &Path, content: &[u8]) -> std::io::Result<()> {
    write_and_rename(path, content)
}

fn write_and_rename(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let millis =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}-{millis}", std::process::id()));
    let temp = path.with_file_name(name);
    let written = (|| {
        let mut f = std::fs::File::create(&temp)?;
        f.write_all(content)?;
        f.sync_all()?;
        std::fs::rename(&temp, path)?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// An I/O error as C's `strerror` words it (what Redis prints), without Rust's
/// ` (os error N)`.
#[must_use]
pub(crate) fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("ferrokey-durable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.txt");
        std::fs::write(&path, "old content, longer than the new").unwrap();
        replace(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.txt")]);
        let err = replace(&dir.join("missing-dir").join("f"), b"x").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
