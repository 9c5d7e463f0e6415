//! The AWS-shaped end-to-end run (issue "AWS under real conditions",
//! SPEC 6, 15, 17, 19): the real handlers of every function (http,
//! transform, consumer, curate, daily, erase) against a moto server behind
//! the fault proxy of `gender-testkit`, joined by an event pump that
//! reproduces AWS's delivery semantics ([`pump`]), fed the same generated
//! traffic as a local `gender-service serve`, and checked against it
//! ([`checks`]). The run itself is `tests/run.rs`; docs/DEPLOY.md
//! ("The AWS-shaped run") describes it.

pub mod api;
pub mod archive;
pub mod checks;
pub mod freshness;
pub mod http;
pub mod local;
pub mod pump;
pub mod send;
pub mod stack;
pub mod traffic;
