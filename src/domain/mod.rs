//! Plain domain types and validators. No I/O here.

pub mod types;
pub mod validate;

pub use types::*;
