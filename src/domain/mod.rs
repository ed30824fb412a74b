//! Plain domain types and validators. No I/O here.

pub mod attrs;
pub mod types;
pub mod validate;

pub use attrs::*;
pub use types::*;
