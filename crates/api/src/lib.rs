//! The application layer: `App::build(Config)` wires concrete adapters behind the
//! ports and exposes the flows of the seed guide (register, read profile
//! cache-first, create an encrypted record, grant and revoke access, read a
//! record only when authorized, log every access), a CLI and an HTTP server.
//!
//! This is the only library crate that names concrete adapters. It is filled by
//! the api issue; today it only declares its place in the workspace.
