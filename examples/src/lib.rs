//! Runnable examples of HealthLedger; see `examples/` and the README.
