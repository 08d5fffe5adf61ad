//! Users as text: the ACL file (`aclfile`), read whole by startup and `ACL LOAD` and written by
//! `ACL SAVE`, and the `user` directives of the config file, with Redis 7.0's rules and error
//! texts (`ACLLoadFromFile`, `ACLLoadConfiguredUsers`, `ACLSaveToFile`).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::engine::acl::catalog::Catalog;
use crate::engine::acl::selector::has_spaces;
use crate::engine::acl::user::{merge_selectors, User};
use crate::engine::acl::{describe, SetUserError};

/// Users by name.
pub(crate) type Table = BTreeMap<Bytes, Arc<User>>;

/// Parses an ACL file into a whole new table, or gives every problem found, on one line, as
/// `ACL LOAD` replies it (nothing is loaded then). `filename` is the path as configured. A file
/// without a `default` user gets Redis's built-in one (`requirepass` does not apply to it).
///
/// # Errors
/// Every problem, and that nothing changed.
pub(crate) fn parse(
    text: &[u8],
    filename: &str,
    catalog: &Catalog,
    all_channels: bool,
) -> Result<Table, String> {
    let mut table = Table::new();
    let mut errors = String::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let args: Vec<&[u8]> = line.split(|&b| b == b' ').filter(|a| !a.is_empty()).collect();
        let (name, rules) = match &args[..] {
            [b"user", name, rules @ ..] => (*name, rules),
            _ => {
                errors.push_str(&format!(
                    "{filename}:{n} should start with user keyword followed by the username. "
                ));
                continue;
            }
        };
        if has_spaces(name) {
            errors.push_str(&format!(
                "'{filename}:{n}: username '{}' contains invalid characters. ",
                String::from_utf8_lossy(name)
            ));
            continue;
        }
        if table.contains_key(name) {
            errors.push_str(&format!(
                "WARNING: Duplicate user '{}' found on line {n}. ",
                String::from_utf8_lossy(name)
            ));
            continue;
        }
        let rules: Vec<Bytes> = rules.iter().map(|r| Bytes::copy_from_slice(r)).collect();
        let Ok(rules) = merge_selectors(&rules) else {
            errors.push_str(&format!("{filename}:{n}: Unmatched parenthesis in selector definition."));
            continue;
        };
        let mut user = User::new(Bytes::copy_from_slice(name), catalog, all_channels);
        let mut syntax_error = false;
        for rule in &rules {
            let rule = rule.trim_ascii();
            match user.apply(catalog, all_channels, rule) {
                Ok(()) => {}
                Err(e @ SetUserError::UnknownCommand) => errors.push_str(&format!(
                    "{filename}:{n}: Error in applying operation '{}': {e}. ",
                    String::from_utf8_lossy(rule)
                )),
                Err(e) if !syntax_error => {
                    errors.push_str(&format!("{filename}:{n}: {e}. "));
                    syntax_error = true;
                }
                Err(_) => {}
            }
        }
        table.insert(user.name.clone(), Arc::new(user));
    }
    if !errors.is_empty() {
        errors.push_str(
            "WARNING: ACL errors detected, no change to the previously active ACL rules was performed",
        );
        return Err(errors);
    }
    table.entry(Bytes::from_static(b"default")).or_insert_with(|| Arc::new(User::default_user(catalog)));
    Ok(table)
}

/// The table as an ACL file: one `user` line per user, by name, as `ACL LIST` shows them.
#[must_use]
pub(crate) fn render(table: &Table, catalog: &Catalog) -> String {
    table.values().map(|u| format!("{}\n", line(catalog, u))).collect()
}

/// A user as one `user` line.
#[must_use]
pub(crate) fn line(catalog: &Catalog, user: &User) -> String {
    format!("user {} {}", String::from_utf8_lossy(&user.name), describe::user(catalog, user))
}

/// Applies the config file's `user` directives (each: the name, then its rules) to `table`,
/// as Redis's startup does: a user is created anew, except `default`, which is reset first.
///
/// # Errors
/// The directive at fault and why, as Redis logs it.
pub(crate) fn apply_directives(
    table: &mut Table,
    directives: &[Vec<String>],
    catalog: &Catalog,
    all_channels: bool,
) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for words in directives {
        let Some((name, rules)) = words.split_first() else { continue };
        if !seen.insert(name.as_str()) {
            return Err(format!(
                "Error in user declaration '{name}': Duplicate user found. A user can only be defined once in \
                 config files"
            ));
        }
        if has_spaces(name.as_bytes()) {
            return Err("Spaces not allowed in ACL usernames".into());
        }
        let rules: Vec<Bytes> = rules.iter().map(|r| Bytes::copy_from_slice(r.as_bytes())).collect();
        let rules = merge_selectors(&rules).map_err(|start| {
            format!(
                "Error in user declaration '{}': Unmatched parenthesis in acl selector starting at '{}'.",
                name,
                String::from_utf8_lossy(&start)
            )
        })?;
        let mut user = if name == "default" {
            let mut u = User::default_user(catalog);
            // Cannot fail.
            let _ = u.apply(catalog, all_channels, b"reset");
            u
        } else {
            User::new(Bytes::copy_from_slice(name.as_bytes()), catalog, all_channels)
        };
        for rule in &rules {
            user.apply(catalog, all_channels, rule).map_err(|e| {
                format!(
                    "Error loading ACL rule '{}' for the user named '{name}': {e}",
                    String::from_utf8_lossy(rule)
                )
            })?;
        }
        if !user.enabled {
            tracing::info!(
                "The user '{name}' is disabled (there is no 'on' modifier in the user description). Make sure this \
                 is not a configuration error."
            );
        }
        table.insert(user.name.clone(), Arc::new(user));
    }
    Ok(())
}
