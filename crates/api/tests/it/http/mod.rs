//! The HTTP server against a real server on a random port, over anvil and
//! SQLite (the story once on PostgreSQL too).

mod attacks;
mod client;
mod matrix;
mod story;
