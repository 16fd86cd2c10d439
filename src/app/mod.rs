//! Use cases: what a person or a program can do, each in one function that
//! every front end calls (the API's handlers, the console, the command line).
//! Front ends parse their input into typed values and format the answer; the
//! rules of the change and the call into storage are here, once (and so, in
//! time, the audit entry each change writes).

pub mod deliveries;
pub mod endpoints;
pub mod grants;
pub mod integrations;
pub mod orders;
pub mod products;
pub mod signing_keys;
pub mod tokens;

use crate::store::StoreError;

/// Why a use case did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value breaks a rule of the change (the field it is about named).
    #[error("{detail}")]
    Invalid { field: &'static str, detail: String },
    #[error("{0}")]
    NotFound(String),
    /// The change cannot be made as things are now (try again later, or
    /// change something else first).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
