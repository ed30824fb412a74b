//! Authentication: turns a request's credentials into a typed caller.

pub mod client_cert;
pub mod digest;
pub mod throttle;
