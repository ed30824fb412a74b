//! sipsettings: a self-hosted SIP account settings server.
//!
//! Layers (a request flows down once and back up once):
//! `http` (wire adapters) → `auth` (typed caller) → `service` (business rules) → `store` (SQL).
// Server code must not panic on input; tests may.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented,
        clippy::await_holding_lock
    )
)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod domain;
pub mod error;
pub mod http;
pub mod metrics;
pub mod service;
pub mod store;
pub mod tls;
pub mod util;

pub use config::Config;
