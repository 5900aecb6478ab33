//! Errors as values, with the distinction the command line needs: bad input from the user
//! (exit code 2), a failure while doing valid work (exit code 1), or a stop asked for by
//! SIGINT or SIGTERM (exit code 128 + the signal: 130, 143).

use std::fmt;

/// Everything that can go wrong in kvsim.
#[derive(Debug)]
pub enum Error {
    /// The user's input is wrong: a scenario field, a trace row, a command-line value.
    Input(String),
    /// Valid input, but the work failed (an I/O error writing results, an internal invariant).
    Failure(String),
    /// Stopped by a signal (its number) before the work was done; the message says what
    /// was kept.
    Interrupted(i32, String),
}

impl Error {
    /// An input error with the given message.
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }

    /// A failure with the given message.
    pub fn failure(msg: impl Into<String>) -> Self {
        Error::Failure(msg.into())
    }

    /// The interruption by signal `sig` (see `crate::interrupt`).
    pub fn interrupted(sig: i32) -> Self {
        Error::Interrupted(
            sig,
            format!("interrupted by {}", crate::interrupt::signal_name(sig)),
        )
    }

    /// The process exit code for this error: 2 for bad input, 1 for failures, 128 + the
    /// signal for an interruption (the shell's convention: 130 for SIGINT, 143 for SIGTERM).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) => 2,
            Error::Failure(_) => 1,
            Error::Interrupted(sig, _) => 128 + sig,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Input(m) | Error::Failure(m) | Error::Interrupted(_, m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// The crate-wide result type.
pub type Result<T> = std::result::Result<T, Error>;
