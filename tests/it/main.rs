//! One integration test binary: real server on port 0, real HTTP, real digest client,
//! on SQLite always and on PostgreSQL when `SIPSETTINGS_TEST_POSTGRES_URL` is set.

mod actions;
mod auth;
mod bad_input;
mod cli;
mod feeds_api;
mod harness;
mod ingest;
mod isolation;
mod journal;
mod jsonapi;
mod migrate;
mod openapi;
mod operator;
mod ops;
mod readme;
mod replicas;
mod telecomx;
mod tls;
