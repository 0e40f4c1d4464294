//! Differential fuzzing: every operation runs on cancel-core and on the
//! reference model (tests/model/mod.rs); any difference, panic or leak is a
//! finding.
//!
//! The interpreter provokes panics on purpose (callbacks, closure drops and
//! wakers that panic) and catches them itself; its panic hook keeps quiet
//! about those ("deliberate: " messages) and hands every other panic to the
//! hook libFuzzer installed, which reports it and aborts.
#![no_main]

#[path = "../../tests/model/mod.rs"]
mod model;

#[global_allocator]
static GLOBAL: model::Counting = model::Counting;

libfuzzer_sys::fuzz_target!(|data: &[u8]| model::run(data));
