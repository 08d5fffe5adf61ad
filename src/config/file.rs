//! Reading redis.conf syntax: one directive per line, quoted arguments, `include`, comments.

use std::path::Path;

use super::ConfigError;
use crate::splitargs;

/// One directive as written, with where it came from (for error messages).
#[derive(Debug, Clone)]
pub struct Line {
    /// `file:line` or `command line`.
    pub origin: String,
    /// The raw text.
    pub text: String,
    /// The directive name followed by its arguments.
    pub args: Vec<String>,
}

const MAX_INCLUDE_DEPTH: usize = 16;

/// Reads a config file and the files it includes, in order.
pub(crate) fn read(path: &Path) -> Result<Vec<Line>, ConfigError> {
    let mut lines = Vec::new();
    read_into(path, 0, &mut lines)?;
    Ok(lines)
}

fn read_into(path: &Path, depth: usize, out: &mut Vec<Line>) -> Result<(), ConfigError> {
    let shown = path.display().to_string();
    if depth > MAX_INCLUDE_DEPTH {
        return Err(ConfigError::IncludeDepth(shown));
    }
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
    for (n, raw) in text.lines().enumerate() {
        let origin = format!("{shown}:{}", n + 1);
        let Some(line) = parse_line(raw, &origin)? else { continue };
        if line.args[0].eq_ignore_ascii_case("include") {
            if line.args.len() != 2 {
                return Err(ConfigError::Line {
                    origin,
                    line: line.text,
                    reason: "include takes one file".into(),
                });
            }
            for path in include_paths(&line.args[1], &origin, &line.text)? {
                read_into(&path, depth + 1, out)?;
            }
        } else {
            out.push(line);
        }
    }
    Ok(())
}

/// The files an `include` names: the path itself, or, when its file name is a glob pattern
/// (`/etc/redis/conf.d/*.conf`, as Redis 7.0 allows), every file of that directory it matches,
/// in name order (none is no error).
fn include_paths(path: &str, origin: &str, text: &str) -> Result<Vec<std::path::PathBuf>, ConfigError> {
    let path = Path::new(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !name.contains(['*', '?', '[']) {
        return Ok(vec![path.to_path_buf()]);
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let entries = std::fs::read_dir(dir).map_err(|e| ConfigError::Line {
        origin: origin.to_owned(),
        line: text.to_owned(),
        reason: format!("include {}: {e}", dir.display()),
    })?;
    let mut found: Vec<std::path::PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .filter(|e| crate::glob::matches(name.as_bytes(), e.file_name().as_encoded_bytes(), false))
        .map(|e| e.path())
        .collect();
    found.sort();
    Ok(found)
}

fn parse_line(raw: &str, origin: &str) -> Result<Option<Line>, ConfigError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let args = splitargs::split(trimmed.as_bytes()).map_err(|e| ConfigError::Line {
        origin: origin.to_owned(),
        line: trimmed.to_owned(),
        reason: e.to_string(),
    })?;
    let args = args.into_iter().map(|a| String::from_utf8_lossy(&a).into_owned()).collect();
    Ok(Some(Line { origin: origin.to_owned(), text: trimmed.to_owned(), args }))
}

/// Turns `--name v1 v2 --other v` into directive lines, as redis-server reads its arguments: a
/// value with spaces (`--save "900 1"`) counts as several arguments, an empty one (`--logfile ""`)
/// as one empty argument.
pub(crate) fn from_args(args: &[String]) -> Result<Vec<Line>, ConfigError> {
    let mut lines: Vec<Line> = Vec::new();
    for arg in args {
        if let Some(name) = arg.strip_prefix("--") {
            lines.push(Line {
                origin: "command line".into(),
                text: arg.clone(),
                args: vec![name.to_owned()],
            });
        } else if let Some(line) = lines.last_mut() {
            line.text.push(' ');
            line.text.push_str(arg);
            if arg.trim().is_empty() {
                line.args.push(String::new());
            } else {
                line.args.extend(arg.split_ascii_whitespace().map(str::to_owned));
            }
        } else {
            return Err(ConfigError::Line {
                origin: "command line".into(),
                line: arg.clone(),
                reason: "expected --directive before a value".into(),
            });
        }
    }
    Ok(lines)
}
