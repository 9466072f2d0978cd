//! Protocol facts shared by several layers (HTTP paths, hop-by-hop headers, identity header values, registered JWT claims).
//!
//! The bottom layer: it depends on nothing else in the crate, so `config`, `routing`, `forward` and `auth`
//! can all use it without import cycles.

pub mod claims;
pub mod cookie;
pub mod headers;
pub mod identity;
pub mod path;
