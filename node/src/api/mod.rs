//! Decoding and validation of API request bodies: pure functions, no IO; the HTTP layer calls
//! them and maps their errors to status codes.

pub mod json;
pub mod v1_request;
pub mod v2_request;
