//! SIGINT and SIGTERM as a flag that long loops poll. The commands that write results
//! ([`install`] is called for `run`, `sweep`, `plan`, `compare` and `paging`) stop at the
//! next poll with [`Error::Interrupted`], so that the normal cleanup runs: the staged
//! output is removed and the previous results stay as they were (`docs/outputs.md`). A
//! second signal while the first is being handled ends the process at once (exit code
//! 128 + signal), for a loop that does not poll; its leftovers are cleaned by the next run.
//! Signal handling through `signal-hook` (0.4), which only stores to these atomics in the
//! handler.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Whether a signal arrived (arms the immediate exit on a second one).
static SEEN: AtomicBool = AtomicBool::new(false);
/// The last signal's number, 0 for none.
static SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// Install the handlers for SIGINT and SIGTERM (Unix; elsewhere a no-op).
pub fn install() -> Result<()> {
    #[cfg(unix)]
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let fail = |e: std::io::Error| Error::failure(format!("cannot handle signal {sig}: {e}"));
        // The order matters: the exit checks the flag before the flag is set, so only a
        // second signal exits.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, &SEEN).map_err(fail)?;
        signal_hook::flag::register_usize(sig, &SIGNAL, sig as usize).map_err(fail)?;
        signal_hook::flag::register(sig, &SEEN).map_err(fail)?;
    }
    Ok(())
}

/// The signal that asked the process to stop, if any.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        s => Some(s as i32),
    }
}

/// `Err(Error::Interrupted)` once a signal arrived.
pub fn check() -> Result<()> {
    match requested() {
        None => Ok(()),
        Some(sig) => Err(Error::interrupted(sig)),
    }
}

/// The conventional name of a signal number.
pub fn signal_name(sig: i32) -> String {
    match sig {
        2 => "SIGINT".to_string(),
        15 => "SIGTERM".to_string(),
        s => format!("signal {s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_signal_means_no_interruption() {
        // Unit tests never install the handlers, so nothing sets the flag.
        assert_eq!(requested(), None);
        assert!(check().is_ok());
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(Error::interrupted(2).exit_code(), 130);
        assert_eq!(Error::interrupted(15).exit_code(), 143);
    }
}
