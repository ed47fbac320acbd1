//! Integration tests of healthledger-core: the conformance suites on the
//! in-memory adapters, the fakes' chain behaviour, mocks, and parser
//! property tests.

mod conformance;
mod fakes;
mod parsers;
