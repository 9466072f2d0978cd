//! The gateway: a reverse proxy that authenticates every request before a legacy backend sees it.
//!
//! Request path, one module per stage: `listener` (accept, limits, drain) → `tls` → `server` (the hyper
//! service) → `routing` (normalise path, pick route) → `auth` (Bearer token, login) → `forward` (headers,
//! pooled client, streaming). `config` builds the validated settings, `state` the per-config runtime data,
//! `error` maps every failure to its response;
//! `protocol` holds the HTTP/JWT facts several layers share and depends on nothing.
#![forbid(unsafe_code)]

pub mod admin;
pub mod assets;
pub mod auth;
pub mod body;
pub mod config;
pub mod connection;
pub mod cors;
pub mod credentials;
pub mod defaults;
pub mod error;
pub mod exposure;
pub mod forward;
pub mod health;
pub mod listener;
pub mod metrics;
pub mod page;
pub mod protocol;
pub mod reload;
pub mod response;
pub mod routing;
pub mod server;
pub mod shared;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod users;
pub mod wakeups;

pub use listener::{spawn, Running, StartError};
