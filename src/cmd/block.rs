//! What the blocking commands (BLPOP and friends, BZPOPMIN and friends) share: their timeout
//! argument, and their replies when a wait ends unserved.

use std::time::Duration;

use crate::cmd::args;
use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::blocking::Unblock;
use crate::facade::Reply;

/// The reply of a blocking command whose timeout passed: a null array, even for BLMOVE and
/// BRPOPLPUSH (whose non-blocking form, as inside MULTI, answers a null bulk), as Redis does.
pub(crate) const TIMED_OUT: Reply = Reply::NilArray;

/// The reply of a wait that ended unserved: timed out, CLIENT UNBLOCK ... ERROR, or the server
/// turned replica.
///
/// # Errors
/// Redis's UNBLOCKED errors.
pub(crate) fn unblocked(why: Unblock) -> CmdResult {
    match why {
        Unblock::Timeout => Ok(TIMED_OUT),
        Unblock::Error => Err(CmdError::msg("UNBLOCKED client unblocked via CLIENT UNBLOCK")),
        Unblock::Demoted => Err(CmdError::msg(
            "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)",
        )),
    }
}

/// A blocking timeout in seconds (fractions allowed; 0 blocks forever).
///
/// # Errors
/// Redis's errors for a timeout that is not a float, negative, or too large.
pub(crate) fn timeout(arg: &[u8]) -> Result<Option<Duration>, CmdError> {
    let secs = args::float(arg).map_err(|_| CmdError::msg("ERR timeout is not a float or out of range"))?;
    if secs < 0.0 {
        return Err(CmdError::msg("ERR timeout is negative"));
    }
    if !secs.is_finite() || secs > 1e12 {
        return Err(CmdError::msg("ERR timeout is out of range"));
    }
    Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs)))
}
