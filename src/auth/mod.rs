//! Authentication: turns a request's credentials into a typed caller.

pub mod digest;
pub mod throttle;
