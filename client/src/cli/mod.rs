//! The `cairn` commands that talk to a deployment (the binary's own modules: anyhow at the
//! edge; the verifying library stays free of networking).

pub(crate) mod image;
pub(crate) mod log;
pub(crate) mod login;
pub(crate) mod net;
pub(crate) mod registry;
pub(crate) mod sign;
